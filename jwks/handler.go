package jwks

import (
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keyd-io/keyd/rotation"
)

const (
	wellKnownPath = "/.well-known/jwks.json"
	keysetsPrefix = "/keysets/"
	jwksSuffix    = "/jwks.json"
)

var (
	allowHeader  = []string{"GET, HEAD, OPTIONS"}
	corsHeader   = []string{"*"}
	allowMethods = []string{"GET, HEAD"}
	preflightAge = []string{"86400"}
)

// Handler serves /.well-known/jwks.json (the default keyset) and /keysets/<name>/jwks.json.
// It never serves a private member: documents are built from the state's public JWKs only.
type Handler struct {
	mu   sync.Mutex // serialises writers; readers use docs without locking
	docs atomic.Pointer[catalog]
}

type catalog struct {
	byName      map[string]*Document
	defaultName string
}

// NewHandler returns a Handler serving no keysets yet; defaultName is the keyset served at
// /.well-known/jwks.json.
func NewHandler(defaultName string) *Handler {
	h := &Handler{}
	h.docs.Store(&catalog{byName: map[string]*Document{}, defaultName: defaultName})
	return h
}

// Publish encodes state s of keyset name and serves it from now on.
func (h *Handler) Publish(name string, s rotation.State, maxAge time.Duration) {
	doc := Encode(s, maxAge)
	h.update(func(c *catalog) { c.byName[name] = doc })
}

// Retain stops serving every keyset not in names and makes defaultName the default.
func (h *Handler) Retain(names []string, defaultName string) {
	h.update(func(c *catalog) {
		keep := map[string]*Document{}
		for _, n := range names {
			if d, ok := c.byName[n]; ok {
				keep[n] = d
			}
		}
		c.byName, c.defaultName = keep, defaultName
	})
}

// Document returns the document served for keyset name, or nil.
func (h *Handler) Document(name string) *Document {
	return h.docs.Load().byName[name]
}

func (h *Handler) update(change func(*catalog)) {
	h.mu.Lock()
	defer h.mu.Unlock()
	old := h.docs.Load()
	next := &catalog{byName: make(map[string]*Document, len(old.byName)+1),
		defaultName: old.defaultName}
	for k, v := range old.byName {
		next.byName[k] = v
	}
	change(next)
	h.docs.Store(next)
}

// ServeHTTP answers GET and HEAD with the keyset's JWKS (304 when If-None-Match matches),
// OPTIONS with the allowed methods, and anything else with 405.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	cat := h.docs.Load()
	name, ok := keysetOf(r.URL.Path, cat.defaultName)
	if !ok {
		http.NotFound(w, r)
		return
	}
	doc := cat.byName[name]
	if doc == nil {
		http.Error(w, "unknown keyset", http.StatusNotFound)
		return
	}
	header := w.Header()
	switch r.Method {
	case http.MethodGet, http.MethodHead:
	case http.MethodOptions:
		header["Allow"] = allowHeader
		header["Access-Control-Allow-Origin"] = corsHeader
		header["Access-Control-Allow-Methods"] = allowMethods
		header["Access-Control-Max-Age"] = preflightAge
		w.WriteHeader(http.StatusNoContent)
		return
	default:
		header["Allow"] = allowHeader
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}

	for k, v := range doc.header {
		header[k] = v
	}
	if inm := r.Header["If-None-Match"]; len(inm) > 0 && etagMatches(inm, doc.ETag) {
		delete(header, "Content-Length")
		delete(header, "Content-Type")
		w.WriteHeader(http.StatusNotModified)
		return
	}
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		_, _ = w.Write(doc.Body)
	}
}

// keysetOf maps a request path to a keyset name.
func keysetOf(path, defaultName string) (string, bool) {
	if path == wellKnownPath {
		return defaultName, true
	}
	rest, ok := strings.CutPrefix(path, keysetsPrefix)
	if !ok {
		return "", false
	}
	name, ok := strings.CutSuffix(rest, jwksSuffix)
	if !ok || name == "" || strings.ContainsAny(name, "/\\") {
		return "", false
	}
	return name, true
}

// etagMatches applies If-None-Match's weak comparison (RFC 9110 13.1.2) to every listed
// tag, without allocating.
func etagMatches(values []string, etag string) bool {
	for _, v := range values {
		for rest := v; rest != ""; {
			var tag string
			tag, rest, _ = strings.Cut(rest, ",")
			tag = strings.TrimSpace(tag)
			if tag == "*" || strings.TrimPrefix(tag, "W/") == etag {
				return true
			}
		}
	}
	return false
}
