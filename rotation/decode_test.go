package rotation_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/keyd-io/keyd/keys"
	"github.com/keyd-io/keyd/rotation"
)

// TestDecodeKeepsPublicBytes checks that a state read back from its document holds each
// public JWK in the bytes it was created with, so that a replica that loaded the state
// serves the same JWKS bytes (and ETag) as the replica that wrote it.
func TestDecodeKeepsPublicBytes(t *testing.T) {
	created := bootstrapState(t)
	doc, err := created.Encode()
	if err != nil {
		t.Fatal(err)
	}
	loaded, err := rotation.Decode(doc, "api")
	if err != nil {
		t.Fatal(err)
	}
	for i, k := range loaded.Keys {
		if !bytes.Equal(k.Public, created.Keys[i].Public) {
			t.Errorf("key %s: loaded public JWK\n%s\nwant the created bytes\n%s", k.KID,
				k.Public, created.Keys[i].Public)
		}
	}
}

// TestRecentCommits checks that a state keeps the ids of its last MaxRecentCommits
// writes across encoding, and that a document without them decodes with none.
func TestRecentCommits(t *testing.T) {
	tests := []struct {
		name    string
		writes  int
		want    int
		dropKey bool // remove the field from the document, as older keyds wrote it
	}{
		{name: "one write", writes: 1, want: 1},
		{name: "at the bound", writes: rotation.MaxRecentCommits, want: rotation.MaxRecentCommits},
		{name: "past the bound", writes: rotation.MaxRecentCommits + 5,
			want: rotation.MaxRecentCommits},
		{name: "document without the field", writes: 3, dropKey: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := bootstrapState(t)
			var ids []string
			for i := range tc.writes {
				id := fmt.Sprintf("c%02d", i)
				ids = append(ids, id)
				s.RecordCommit(id)
			}
			doc, err := s.Encode()
			if err != nil {
				t.Fatal(err)
			}
			if tc.dropKey {
				var fields map[string]json.RawMessage
				if err := json.Unmarshal(doc, &fields); err != nil {
					t.Fatal(err)
				}
				delete(fields, "recent_commits")
				if doc, err = json.Marshal(fields); err != nil {
					t.Fatal(err)
				}
			}
			loaded, err := rotation.Decode(doc, "api")
			if err != nil {
				t.Fatal(err)
			}
			if want := ids[len(ids)-tc.want:]; !slices.Equal(loaded.Commits, want) {
				t.Errorf("commits %v, want %v", loaded.Commits, want)
			}
			if last := ids[len(ids)-1]; loaded.Committed(last) == tc.dropKey {
				t.Errorf("Committed(%s) = %v", last, !tc.dropKey)
			}
		})
	}
}

// bootstrapState returns the state of a keyset's first start.
func bootstrapState(t *testing.T) rotation.State {
	t.Helper()
	var fresh []rotation.Key
	for range 2 {
		k, err := keys.Generate("ES256", 0)
		if err != nil {
			t.Fatal(err)
		}
		pub, err := k.PublicJWK()
		if err != nil {
			t.Fatal(err)
		}
		fresh = append(fresh, rotation.Key{KID: k.KID, Alg: k.Alg, Public: pub})
	}
	s, _ := rotation.Apply(nil, "api", rotation.Policy{}, rotation.Decision{Bootstrap: true},
		fresh, time.Unix(1700000000, 0).UTC())
	return s
}
