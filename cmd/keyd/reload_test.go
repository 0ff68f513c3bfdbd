package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/keyd-io/keyd/internal/keydtest"
)

func TestReload(t *testing.T) {
	data := t.TempDir()
	base := "[server]\nlisten = \"{{listen}}\"\n[storage.disk]\ndir = \"" + data + "\"\n" +
		"[[keyset]]\nname = \"default\"\n"
	keyd := keydtest.Start(t, base, keydtest.Options{})
	rewrite := func(body string) {
		t.Helper()
		body = strings.ReplaceAll(body, "{{listen}}", keyd.Addr)
		if err := os.WriteFile(keyd.Config, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		keyd.Signal(syscall.SIGHUP)
	}
	status := func(path string) int {
		resp, _ := keyd.Get(path)
		return resp.StatusCode
	}

	rewrite(base + "[[keyset]]\nname = \"api\"\nalgorithm = \"RS1\"\n")
	keyd.WaitFor("the refused reload to be logged", func() bool {
		return strings.Contains(keyd.Log(), "reload refused")
	})
	if !strings.Contains(keyd.Log(), "RS1") || status("/.well-known/jwks.json") != 200 {
		t.Fatal("a bad configuration was not explained, or stopped the JWKS")
	}

	rewrite(base + "[[keyset]]\nname = \"api\"\nalgorithm = \"EdDSA\"\n")
	keyd.WaitFor("the new keyset to be served", func() bool {
		return status("/keysets/api/jwks.json") == 200
	})

	rewrite(base)
	keyd.WaitFor("the removed keyset to stop being served", func() bool {
		return status("/keysets/api/jwks.json") == 404
	})
	if status("/.well-known/jwks.json") != 200 {
		t.Fatal("default keyset lost on reload")
	}
}

func TestTLSCertificateReloadedOnSIGHUP(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	first := writeCert(t, certFile, keyFile, "first")
	config := "[server]\nlisten = \"{{listen}}\"\ntls_cert_file = \"" + certFile + "\"\n" +
		"tls_key_file = \"" + keyFile + "\"\n[storage.disk]\ndir = \"" + t.TempDir() + "\"\n"
	keyd := keydtest.Start(t, config, keydtest.Options{NoWait: true})

	served := func() string {
		conn, err := tls.Dial("tcp", keyd.Addr, &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			return ""
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].Subject.CommonName
	}
	keyd.WaitFor("HTTPS to answer", func() bool { return served() == "first" })

	pool := x509.NewCertPool()
	pool.AddCert(first)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := client.Get("https://" + keyd.Addr + "/.well-known/jwks.json")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("JWKS over HTTPS: %d", resp.StatusCode)
	}

	writeCert(t, certFile, keyFile, "second")
	keyd.Signal(syscall.SIGHUP)
	keyd.WaitFor("the renewed certificate to be served", func() bool { return served() == "second" })
}

// writeCert writes a self-signed certificate for 127.0.0.1 with common name cn.
func writeCert(t *testing.T, certFile, keyFile, cn string) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

func TestIssuerFilesRestoredOnSIGHUP(t *testing.T) {
	data := t.TempDir()
	keyd := keydtest.Start(t, "[server]\nlisten = \"{{listen}}\"\n[storage.disk]\ndir = \""+
		data+"\"\n[[keyset]]\nname = \"default\"\n", keydtest.Options{})
	dir := filepath.Join(data, "default")
	kid, _ := currentKey(t, dir)
	for _, name := range []string{"current.jwk", "current.pem"} {
		if err := os.Remove(filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	keyd.Signal(syscall.SIGHUP)
	keyd.WaitFor("current.jwk and current.pem to be restored", func() bool {
		_, errJWK := os.Stat(filepath.Join(dir, "current.jwk"))
		_, errPEM := os.Stat(filepath.Join(dir, "current.pem"))
		return errJWK == nil && errPEM == nil
	})
	if restored, _ := currentKey(t, dir); restored != kid {
		t.Fatalf("restored current.jwk names %s, want %s", restored, kid)
	}
}
