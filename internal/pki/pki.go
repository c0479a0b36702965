// Package pki issues the self-signed CA and the server certificate the
// operator gives a Database that asks for TLS without bringing its own
// certificate. It does one job: names, a clock value and a source of
// randomness in, PEM out. It keeps nothing and talks to nothing, so the
// caller decides where the result is stored (and that it is made once).
package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"time"
)

// DefaultValidity is how long issued certificates are valid: 10 years. The
// operator never renews them; rotating means deleting the Secret that holds
// them (the reconciler issues new ones and the pods roll onto them).
const DefaultValidity = 10 * 365 * 24 * time.Hour

// clockSkew back-dates NotBefore, so a node whose clock is slightly behind
// the operator's still accepts a fresh certificate.
const clockSkew = time.Hour

// Request says what to issue.
type Request struct {
	// CAName is the common name of the CA, e.g. "orders.shop database CA".
	CAName string
	// DNSNames are the server certificate's subject alternative names; the
	// first is also its common name. Wildcards such as
	// "*.orders-headless.shop.svc" are allowed.
	DNSNames []string
	// Now is the issuing time: validity starts an hour before it.
	Now time.Time
	// Validity is how long both certificates stay valid after Now;
	// DefaultValidity when zero.
	Validity time.Duration
	// Rand is the source of randomness for serial numbers and, where the
	// crypto library honours it, keys and signatures (crypto/rand.Reader in
	// production).
	Rand io.Reader
}

// Bundle is an issued server certificate, PEM encoded. The CA's private
// key is not part of it: it is discarded after signing, so nobody can
// issue further certificates that clients of this CA would trust.
type Bundle struct {
	// CertPEM is the server certificate (tls.crt).
	CertPEM []byte
	// KeyPEM is the server's private key, PKCS #8 (tls.key).
	KeyPEM []byte
	// CAPEM is the CA certificate clients verify the server with (ca.crt).
	CAPEM []byte
}

// Issue creates a new ECDSA P-256 CA and a server certificate signed by it
// for req.DNSNames.
func Issue(req Request) (*Bundle, error) {
	if len(req.DNSNames) == 0 {
		return nil, errors.New("issue certificate: no DNS names")
	}
	if req.Rand == nil {
		return nil, errors.New("issue certificate: no source of randomness")
	}
	if req.Now.IsZero() {
		return nil, errors.New("issue certificate: no issuing time")
	}
	validity := req.Validity
	if validity == 0 {
		validity = DefaultValidity
	}
	notBefore := req.Now.Add(-clockSkew).UTC().Truncate(time.Second)
	notAfter := req.Now.Add(validity).UTC().Truncate(time.Second)

	caKey, err := ecdsa.GenerateKey(elliptic.P256(), req.Rand)
	if err != nil {
		return nil, fmt.Errorf("generate CA key: %w", err)
	}
	caSerial, err := serial(req.Rand)
	if err != nil {
		return nil, fmt.Errorf("CA serial number: %w", err)
	}
	caTemplate := &x509.Certificate{
		SerialNumber:          caSerial,
		Subject:               pkix.Name{CommonName: req.CAName},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	caDER, err := x509.CreateCertificate(req.Rand, caTemplate, caTemplate, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("sign CA certificate: %w", err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, fmt.Errorf("parse CA certificate: %w", err)
	}

	key, err := ecdsa.GenerateKey(elliptic.P256(), req.Rand)
	if err != nil {
		return nil, fmt.Errorf("generate server key: %w", err)
	}
	serverSerial, err := serial(req.Rand)
	if err != nil {
		return nil, fmt.Errorf("server serial number: %w", err)
	}
	serverTemplate := &x509.Certificate{
		SerialNumber:          serverSerial,
		Subject:               pkix.Name{CommonName: req.DNSNames[0]},
		DNSNames:              append([]string(nil), req.DNSNames...),
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	serverDER, err := x509.CreateCertificate(req.Rand, serverTemplate, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("sign server certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encode server key: %w", err)
	}
	return &Bundle{
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: serverDER}),
		KeyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
		CAPEM:   pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
	}, nil
}

// serial is a random positive 128-bit serial number.
func serial(rand io.Reader) (*big.Int, error) {
	b := make([]byte, 16)
	if _, err := io.ReadFull(rand, b); err != nil {
		return nil, err
	}
	b[0] &= 0x7f
	n := new(big.Int).SetBytes(b)
	if n.Sign() == 0 {
		n.SetInt64(1)
	}
	return n, nil
}
