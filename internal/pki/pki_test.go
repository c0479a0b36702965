package pki_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/example/database-operator/internal/pki"
	"github.com/example/database-operator/render"
)

var issuedAt = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

func parseCert(g Gomega, pemBytes []byte) *x509.Certificate {
	block, rest := pem.Decode(pemBytes)
	g.Expect(block).NotTo(BeNil(), "PEM")
	g.Expect(block.Type).To(Equal("CERTIFICATE"))
	g.Expect(rest).To(BeEmpty(), "one certificate")
	cert, err := x509.ParseCertificate(block.Bytes)
	g.Expect(err).NotTo(HaveOccurred())
	return cert
}

func issue(g Gomega) *pki.Bundle {
	b, err := pki.Issue(pki.Request{
		CAName:   "orders.shop database CA",
		DNSNames: render.ServerDNSNames("orders", "shop"),
		Now:      issuedAt,
		Rand:     rand.Reader,
	})
	g.Expect(err).NotTo(HaveOccurred())
	return b
}

// TestIssue parses the bundle back and checks what clients and the engines
// rely on: SANs, validity, key usages, the CA verifying the server
// certificate for every name, and a key that matches the certificate.
func TestIssue(t *testing.T) {
	g := NewWithT(t)
	b := issue(g)
	ca, server := parseCert(g, b.CAPEM), parseCert(g, b.CertPEM)

	g.Expect(ca.IsCA).To(BeTrue())
	g.Expect(ca.BasicConstraintsValid).To(BeTrue())
	g.Expect(ca.MaxPathLenZero).To(BeTrue(), "the CA signs server certificates only")
	g.Expect(ca.KeyUsage).To(Equal(x509.KeyUsageCertSign | x509.KeyUsageCRLSign))
	g.Expect(ca.Subject.CommonName).To(Equal("orders.shop database CA"))

	g.Expect(server.IsCA).To(BeFalse())
	g.Expect(server.KeyUsage).To(Equal(x509.KeyUsageDigitalSignature))
	g.Expect(server.ExtKeyUsage).To(Equal([]x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}))
	g.Expect(server.DNSNames).To(Equal(render.ServerDNSNames("orders", "shop")))
	g.Expect(server.Subject.CommonName).To(Equal("orders.shop.svc"))
	g.Expect(server.SerialNumber).NotTo(Equal(ca.SerialNumber))
	g.Expect(server.SerialNumber.Sign()).To(Equal(1))
	g.Expect(server.PublicKeyAlgorithm).To(Equal(x509.ECDSA))
	g.Expect(server.PublicKey.(*ecdsa.PublicKey).Curve).To(Equal(elliptic.P256()))

	for _, c := range []*x509.Certificate{ca, server} {
		g.Expect(c.NotBefore).To(Equal(issuedAt.Add(-time.Hour)), "back-dated for clock skew")
		g.Expect(c.NotAfter).To(Equal(issuedAt.Add(pki.DefaultValidity)))
	}
	g.Expect(pki.DefaultValidity).To(BeNumerically(">=", 10*365*24*time.Hour))

	roots := x509.NewCertPool()
	roots.AddCert(ca)
	for _, name := range []string{"orders", "orders.shop.svc", "orders-ro.shop.svc.cluster.local", "orders-headless.shop",
		"orders-0.orders-headless.shop.svc", "orders-2.orders-headless.shop.svc.cluster.local"} {
		_, err := server.Verify(x509.VerifyOptions{DNSName: name, Roots: roots, CurrentTime: issuedAt.Add(24 * time.Hour),
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
		g.Expect(err).NotTo(HaveOccurred(), "verify for %s", name)
	}
	for _, name := range []string{"other.shop.svc", "orders.other.svc", "orders-0.orders-headless.other.svc", "127.0.0.1"} {
		_, err := server.Verify(x509.VerifyOptions{DNSName: name, Roots: roots, CurrentTime: issuedAt.Add(24 * time.Hour)})
		g.Expect(err).To(HaveOccurred(), "a name the certificate must not carry: %s", name)
	}
	_, err := server.Verify(x509.VerifyOptions{DNSName: "orders", Roots: roots, CurrentTime: issuedAt.Add(pki.DefaultValidity + time.Hour)})
	g.Expect(err).To(HaveOccurred(), "expired after the validity")

	// Another bundle's CA does not verify this certificate.
	other := x509.NewCertPool()
	other.AddCert(parseCert(g, issue(g).CAPEM))
	_, err = server.Verify(x509.VerifyOptions{DNSName: "orders", Roots: other, CurrentTime: issuedAt})
	g.Expect(err).To(HaveOccurred())

	// The key is the certificate's, and is PKCS #8.
	keyBlock, _ := pem.Decode(b.KeyPEM)
	g.Expect(keyBlock.Type).To(Equal("PRIVATE KEY"))
	_, err = x509.ParsePKCS8PrivateKey(keyBlock.Bytes)
	g.Expect(err).NotTo(HaveOccurred())
	_, err = tls.X509KeyPair(b.CertPEM, b.KeyPEM)
	g.Expect(err).NotTo(HaveOccurred())
	// Only the server key is in the bundle: nothing else is a private key.
	g.Expect(string(b.CertPEM) + string(b.CAPEM)).NotTo(ContainSubstring("PRIVATE KEY"))
}

func TestIssueValidity(t *testing.T) {
	g := NewWithT(t)
	b, err := pki.Issue(pki.Request{CAName: "ca", DNSNames: []string{"a"}, Now: issuedAt, Validity: 48 * time.Hour, Rand: rand.Reader})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(parseCert(g, b.CertPEM).NotAfter).To(Equal(issuedAt.Add(48 * time.Hour)))
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errors.New("no entropy") }

func TestIssueErrors(t *testing.T) {
	cases := []struct {
		name string
		req  pki.Request
		want string
	}{
		{"no names", pki.Request{CAName: "ca", Now: issuedAt, Rand: rand.Reader}, "no DNS names"},
		{"no rand", pki.Request{CAName: "ca", DNSNames: []string{"a"}, Now: issuedAt}, "no source of randomness"},
		{"no time", pki.Request{CAName: "ca", DNSNames: []string{"a"}, Rand: rand.Reader}, "no issuing time"},
		{"rand fails", pki.Request{CAName: "ca", DNSNames: []string{"a"}, Now: issuedAt, Rand: failingReader{}}, "no entropy"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			_, err := pki.Issue(tc.req)
			g.Expect(err).To(MatchError(ContainSubstring(tc.want)))
		})
	}
}
