package main

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/keyd-io/keyd/internal/keydtest"
)

// rawRequest sends request bytes as they are and returns the response status code.
func rawRequest(t *testing.T, addr, request string) int {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, request); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no HTTP answer: %v", err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestHostileRequests(t *testing.T) {
	keyd := keydtest.Start(t, "[server]\nlisten = \"{{listen}}\"\n[storage.disk]\ndir = \""+
		t.TempDir()+"\"\n[[keyset]]\nname = \"default\"\n", keydtest.Options{})
	get := func(target string) string {
		return "GET " + target + " HTTP/1.1\r\nHost: keyd\r\nConnection: close\r\n\r\n"
	}
	tests := []struct {
		name    string
		request string
		want    int
	}{
		{name: "oversized header",
			request: "GET /.well-known/jwks.json HTTP/1.1\r\nHost: keyd\r\nX-Big: " +
				strings.Repeat("a", 64<<10) + "\r\n\r\n",
			want: http.StatusRequestHeaderFieldsTooLarge},
		{name: "unknown path", request: get("/admin"), want: 404},
		{name: "PUT on the JWKS", request: "PUT /.well-known/jwks.json HTTP/1.1\r\nHost: keyd\r\n" +
			"Content-Length: 2\r\nConnection: close\r\n\r\n{}", want: 405},
		{name: "TRACE", request: "TRACE /.well-known/jwks.json HTTP/1.1\r\nHost: keyd\r\n" +
			"Connection: close\r\n\r\n", want: 405},
		{name: "dot-dot is cleaned and redirected",
			request: get("/keysets/../.well-known/jwks.json"), want: 307},
		{name: "encoded dot-dot", request: get("/keysets/%2e%2e/jwks.json"), want: 404},
		{name: "encoded slash", request: get("/keysets/default%2F..%2F/jwks.json"), want: 404},
		{name: "odd characters", request: get("/keysets/%3Cscript%3E%00/jwks.json"), want: 404},
		{name: "very long path", request: get("/keysets/" + strings.Repeat("a", 8000) + "/jwks.json"),
			want: 404},
		{name: "not HTTP", request: "HELLO\r\n\r\n", want: 400},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := rawRequest(t, keyd.Addr, tc.request); got != tc.want {
				t.Fatalf("status %d, want %d", got, tc.want)
			}
		})
	}

	t.Run("many idle connections", func(t *testing.T) {
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for range 300 {
			c, err := net.Dial("tcp", keyd.Addr)
			if err != nil {
				t.Fatal(err)
			}
			conns = append(conns, c)
		}
		if resp, _ := keyd.Get("/.well-known/jwks.json"); resp.StatusCode != 200 {
			t.Fatalf("JWKS with 300 idle connections open: %d", resp.StatusCode)
		}
	})

	t.Run("slow client is cut off and blocks no one", func(t *testing.T) {
		conn, err := net.Dial("tcp", keyd.Addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if _, err := io.WriteString(conn, "GET /.well-known/jwks.json HTTP/1.1\r\nHost: k"); err != nil {
			t.Fatal(err)
		}
		if resp, _ := keyd.Get("/.well-known/jwks.json"); resp.StatusCode != 200 {
			t.Fatalf("JWKS while a client dawdles: %d", resp.StatusCode)
		}
		// The server's header read timeout (5s) closes the connection; allow 15s.
		_ = conn.SetReadDeadline(time.Now().Add(15 * time.Second))
		if _, err := io.ReadAll(conn); err != nil {
			t.Fatalf("slow connection not closed by the server: %v", err)
		}
	})

	if resp, _ := keyd.Get("/healthz"); resp.StatusCode != 200 {
		t.Fatal("keyd unhealthy after hostile requests")
	}
	if code := keyd.Stop(); code != 0 {
		t.Fatalf("exit %d after hostile requests", code)
	}
}
