package main

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// nginxConfig serves one file at jwksPath with the headers keyd sends, from memory (open
// file cache), with as many workers as cores, no access log and unlimited keep-alive, so
// it meets keyd on the same terms.
const nginxConfig = `daemon off;
worker_processes auto;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    server_tokens off;
    sendfile on;
    tcp_nodelay on;
    keepalive_requests 100000000;
    keepalive_timeout 120s;
    open_file_cache max=16 inactive=1h;
    open_file_cache_valid 1h;
    client_body_temp_path %[1]s/tmp;
    proxy_temp_path %[1]s/tmp;
    fastcgi_temp_path %[1]s/tmp;
    uwsgi_temp_path %[1]s/tmp;
    scgi_temp_path %[1]s/tmp;
    server {
        listen %[2]s;
        location = %[3]s {
            root %[1]s/www;
            types { }
            default_type %[4]q;
            etag off;
            add_header ETag %[5]s always;
            add_header Cache-Control %[6]q always;
            add_header Access-Control-Allow-Origin %[7]q always;
            add_header X-Content-Type-Options %[8]q always;
        }
    }
}
`

// startNginx serves body at path with header's Content-Type, ETag, Cache-Control,
// Access-Control-Allow-Origin and X-Content-Type-Options, as a foreground nginx on a
// loopback port.
func startNginx(dir, path string, body []byte, header http.Header) (*process, error) {
	binary, err := exec.LookPath("nginx")
	if err != nil {
		return nil, fmt.Errorf("nginx is not installed (apt-get install nginx): %w", err)
	}
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	file := filepath.Join(dir, "www", filepath.FromSlash(path))
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(dir, "tmp"), 0o755); err != nil {
		return nil, err
	}
	if err := os.WriteFile(file, body, 0o644); err != nil {
		return nil, err
	}
	// nginx's workers drop root; they must be able to read the file.
	for d := filepath.Dir(file); strings.HasPrefix(d, filepath.Clean(dir)); d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			return nil, err
		}
	}

	etag := header.Get("ETag")
	config := fmt.Sprintf(nginxConfig, dir, addr, path, header.Get("Content-Type"),
		"'"+etag+"'", header.Get("Cache-Control"), header.Get("Access-Control-Allow-Origin"),
		header.Get("X-Content-Type-Options"))
	conf := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(conf, []byte(config), 0o644); err != nil {
		return nil, err
	}
	return start(addr, filepath.Join(dir, "nginx.out"), binary, "-p", dir, "-c", conf,
		"-e", filepath.Join(dir, "error.log"))
}

// waitAnswer polls path until nginx answers it at all, then wants that answer to be 200.
func (p *process) waitAnswer(path string) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := client.Get(p.url(path))
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("nginx: GET %s: %s; see %s", path, resp.Status,
					filepath.Join(filepath.Dir(p.log), "error.log"))
			}
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("nginx did not answer within 10s: %w; see %s", err, p.log)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
