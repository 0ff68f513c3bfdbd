package vault

import (
	"fmt"
	"path"
	"strings"
)

// layout turns keyd's names into KV version 2 API paths. The configured mount and prefix
// are logical (as `vault kv` takes them); the data/ and metadata/ segments are added here
// and only here.
type layout struct {
	mount  string
	prefix string
}

// newLayout checks and cleans the mount and prefix settings. A prefix that repeats the
// mount or already holds a data/ or metadata/ segment is refused with the setting it
// should have been, since silently keeping it would store keys under data/data/.
func newLayout(mount, prefix string) (layout, error) {
	m := strings.Trim(mount, "/")
	p := strings.Trim(prefix, "/")
	switch {
	case m == "":
		return layout{}, fmt.Errorf("storage.vault.mount: must not be empty")
	case strings.Contains(m, "//") || strings.Contains(p, "//"):
		return layout{}, fmt.Errorf("storage.vault.prefix: %q holds an empty path segment", prefix)
	}
	if rest, ok := strings.CutSuffix(m, "/data"); ok {
		return layout{}, fmt.Errorf("storage.vault.mount: %q ends in data/; write the mount "+
			"alone (mount = %q): keyd adds data/ and metadata/ itself", mount, rest)
	}
	if rest, ok := strings.CutPrefix(p+"/", m+"/"); ok {
		return layout{}, fmt.Errorf("storage.vault.prefix: %q starts with the mount %q; write "+
			"it relative to the mount (prefix = %q)", prefix, m, suggest(rest))
	}
	for _, seg := range []string{"data", "metadata"} {
		if rest, ok := strings.CutPrefix(p+"/", seg+"/"); ok {
			return layout{}, fmt.Errorf("storage.vault.prefix: %q starts with %s/; write it "+
				"as `vault kv` takes it (prefix = %q): keyd adds data/ and metadata/ itself",
				prefix, seg, suggest(rest))
		}
	}
	for _, s := range strings.Split(p, "/") {
		if s == "." || s == ".." {
			return layout{}, fmt.Errorf("storage.vault.prefix: %q holds %q", prefix, s)
		}
	}
	return layout{mount: m, prefix: p}, nil
}

func suggest(rest string) string {
	rest = strings.Trim(rest, "/")
	rest = strings.TrimPrefix(rest+"/", "data/")
	rest = strings.TrimPrefix(rest, "metadata/")
	return strings.Trim(rest, "/")
}

// logical returns a path inside the mount: <prefix>/<elem...>.
func (l layout) logical(elem ...string) string {
	return path.Join(append([]string{l.prefix}, elem...)...)
}

// data returns the API path holding the secret's values: <mount>/data/<prefix>/<elem...>.
func (l layout) data(elem ...string) string {
	return l.mount + "/data/" + l.logical(elem...)
}

// metadata returns the API path of the secret's versions: <mount>/metadata/<prefix>/<elem...>.
func (l layout) metadata(elem ...string) string {
	return l.mount + "/metadata/" + l.logical(elem...)
}
