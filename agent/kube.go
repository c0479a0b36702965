package agent

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/example/database-operator/instance"
)

// FieldManager is the server-side apply field manager of the agent's
// writes: only its own pod's report annotation.
const FieldManager = "database-agent"

// serviceAccountDir is where the kubelet mounts the pod's ServiceAccount
// token, CA and namespace.
const serviceAccountDir = "/var/run/secrets/kubernetes.io/serviceaccount"

// podClient reads, watches and annotates one pod, the agent's own, through
// the Kubernetes API with the pod's ServiceAccount token. It speaks plain
// HTTP and JSON: the agent needs three requests of one resource, not a
// client library (the binary is copied into every database pod).
type podClient struct {
	base      string // https://host:port
	namespace string
	name      string
	tokenFile string
	http      *http.Client
}

// podObject is the part of a Pod the agent reads.
type podObject struct {
	Metadata struct {
		DeletionTimestamp *time.Time        `json:"deletionTimestamp,omitempty"`
		Labels            map[string]string `json:"labels"`
		Annotations       map[string]string `json:"annotations"`
	} `json:"metadata"`
}

func (p podObject) pod() Pod {
	return Pod{
		Role:     instance.Role(p.Metadata.Labels[instance.LabelRole]),
		Deleting: p.Metadata.DeletionTimestamp != nil,
	}
}

// inClusterPodClient builds the client from the environment the kubelet
// gives every pod: KUBERNETES_SERVICE_HOST/PORT and the mounted token.
func inClusterPodClient(namespace, name string) (*podClient, error) {
	host, port := os.Getenv("KUBERNETES_SERVICE_HOST"), os.Getenv("KUBERNETES_SERVICE_PORT")
	if host == "" || port == "" {
		return nil, fmt.Errorf("KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not set: not running in a pod")
	}
	return newPodClient("https://"+net.JoinHostPort(host, port), serviceAccountDir, namespace, name)
}

// newPodClient trusts the CA in dir/ca.crt and authenticates with
// dir/token, read again for every request (the kubelet rotates it).
func newPodClient(base, dir, namespace, name string) (*podClient, error) {
	ca, err := os.ReadFile(filepath.Join(dir, "ca.crt"))
	if err != nil {
		return nil, fmt.Errorf("reading the API server's CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		return nil, fmt.Errorf("no certificate in %s", filepath.Join(dir, "ca.crt"))
	}
	transport := &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
		DialContext:         (&net.Dialer{Timeout: 3 * time.Second, KeepAlive: 10 * time.Second}).DialContext,
		TLSHandshakeTimeout: 3 * time.Second,
		IdleConnTimeout:     60 * time.Second,
	}
	return &podClient{base: base, namespace: namespace, name: name, tokenFile: filepath.Join(dir, "token"),
		http: &http.Client{Transport: transport}}, nil
}

func (c *podClient) request(ctx context.Context, method, path string, query url.Values, body []byte, contentType string) (*http.Response, error) {
	token, err := os.ReadFile(c.tokenFile)
	if err != nil {
		return nil, fmt.Errorf("reading the ServiceAccount token: %w", err)
	}
	u := c.base + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, r)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+string(bytes.TrimSpace(token)))
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", FieldManager)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return nil, fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, bytes.TrimSpace(msg))
	}
	return resp, nil
}

func (c *podClient) podPath() string {
	return "/api/v1/namespaces/" + url.PathEscape(c.namespace) + "/pods/" + url.PathEscape(c.name)
}

// Get implements PodAPI.
func (c *podClient) Get(ctx context.Context) (Pod, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	resp, err := c.request(ctx, http.MethodGet, c.podPath(), nil, nil, "")
	if err != nil {
		return Pod{}, err
	}
	defer resp.Body.Close()
	var p podObject
	if err := json.NewDecoder(resp.Body).Decode(&p); err != nil {
		return Pod{}, fmt.Errorf("decoding pod %s/%s: %w", c.namespace, c.name, err)
	}
	return p.pod(), nil
}

// Watch implements PodAPI. The request names the pod by a field selector,
// which RBAC authorizes as a request for that one pod; without a
// resourceVersion the API server sends the pod's current state first.
func (c *podClient) Watch(ctx context.Context, out chan<- Pod) error {
	q := url.Values{
		"fieldSelector":  {"metadata.name=" + c.name},
		"watch":          {"true"},
		"timeoutSeconds": {"300"},
	}
	resp, err := c.request(ctx, http.MethodGet, "/api/v1/namespaces/"+url.PathEscape(c.namespace)+"/pods", q, nil, "")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	dec := json.NewDecoder(bufio.NewReader(resp.Body))
	for {
		var ev struct {
			Type   string          `json:"type"`
			Object json.RawMessage `json:"object"`
		}
		if err := dec.Decode(&ev); err != nil {
			if ctx.Err() != nil || err == io.EOF {
				return nil
			}
			return fmt.Errorf("watching pod %s/%s: %w", c.namespace, c.name, err)
		}
		switch ev.Type {
		case "ADDED", "MODIFIED":
			var p podObject
			if err := json.Unmarshal(ev.Object, &p); err != nil {
				return fmt.Errorf("decoding pod %s/%s: %w", c.namespace, c.name, err)
			}
			select {
			case out <- p.pod():
			case <-ctx.Done():
				return nil
			}
		case "ERROR":
			return fmt.Errorf("watching pod %s/%s: %s", c.namespace, c.name, ev.Object)
		}
	}
}

// Report implements PodAPI: the report annotation, owned by FieldManager.
func (c *podClient) Report(ctx context.Context, r instance.Report) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	body, err := json.Marshal(map[string]any{
		"apiVersion": "v1",
		"kind":       "Pod",
		"metadata": map[string]any{
			"name":        c.name,
			"namespace":   c.namespace,
			"annotations": map[string]string{instance.AnnotationReport: r.String()},
		},
	})
	if err != nil {
		return err
	}
	q := url.Values{"fieldManager": {FieldManager}, "force": {"true"}}
	resp, err := c.request(ctx, http.MethodPatch, c.podPath(), q, body, "application/apply-patch+yaml")
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

// InClusterPodAPI is the API of the pod the agent runs in.
func InClusterPodAPI(namespace, name string) (PodAPI, error) {
	return inClusterPodClient(namespace, name)
}
