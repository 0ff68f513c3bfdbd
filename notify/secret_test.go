package notify

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
)

// testSecretText is a valid secret used where its value does not matter.
var testSecretText = "whsec_" + base64.StdEncoding.EncodeToString(
	[]byte("0123456789abcdef0123456789abcdef"))

func TestParseSecret(t *testing.T) {
	tests := []struct {
		name    string
		text    string
		wantErr string
	}{
		{name: "prefixed", text: testSecretText},
		{name: "without prefix", text: strings.TrimPrefix(testSecretText, "whsec_")},
		{name: "trailing newline", text: testSecretText + "\n"},
		{name: "not base64", text: "whsec_not*base64!", wantErr: "standard base64"},
		{name: "too short", text: "whsec_" + base64.StdEncoding.EncodeToString([]byte("short")),
			wantErr: "decodes to 5 bytes"},
		{name: "empty", text: "", wantErr: "decodes to 0 bytes"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseSecret(tc.text)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("ParseSecret: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("ParseSecret error = %v, want one containing %q", err, tc.wantErr)
			case err != nil && tc.text != "" && strings.Contains(err.Error(), tc.text):
				t.Fatalf("error %q quotes the secret", err)
			}
		})
	}
}

// TestSecretNeverPrints proves that no formatting path shows a Secret's key.
func TestSecretNeverPrints(t *testing.T) {
	s, err := ParseSecret(testSecretText)
	if err != nil {
		t.Fatal(err)
	}
	key := "0123456789abcdef"
	jsonText, _ := json.Marshal(map[string]any{"secret": s})
	logs, log := newLogBuffer()
	log.Info("webhook", zap.Any("secret", s), zap.Stringer("stringer", s),
		zap.Error(fmt.Errorf("wrapped %v", s)))

	outputs := []struct {
		name string
		text string
	}{
		{name: "%v", text: fmt.Sprintf("%v", s)},
		{name: "%+v", text: fmt.Sprintf("%+v", s)},
		{name: "%#v", text: fmt.Sprintf("%#v", s)},
		{name: "%s", text: fmt.Sprintf("%s", s)},
		{name: "%x", text: fmt.Sprintf("%x", s)},
		{name: "%d", text: fmt.Sprintf("%d", s)},
		{name: "%q", text: fmt.Sprintf("%q", s)},
		{name: "pointer", text: fmt.Sprintf("%v", &s)},
		{name: "in a struct", text: fmt.Sprintf("%+v", struct{ S Secret }{s})},
		{name: "json", text: string(jsonText)},
		{name: "zap", text: logs.String()},
		{name: "error", text: fmt.Errorf("sign: %v", s).Error()},
	}
	for _, out := range outputs {
		t.Run(out.name, func(t *testing.T) {
			hex := fmt.Sprintf("%x", key)
			for _, leak := range []string{key, hex, testSecretText[len("whsec_"):]} {
				if strings.Contains(out.text, leak) {
					t.Fatalf("output %q holds the key", out.text)
				}
			}
			if !strings.Contains(out.text, redacted) {
				t.Fatalf("output %q does not say %s", out.text, redacted)
			}
		})
	}
}

func TestLoadSecretErrorsHideContent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bad.secret")
	content := "whsec_c2hvcnQtc2VjcmV0LXZhbHVl"
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := LoadSecret(path)
	if err == nil {
		t.Fatal("LoadSecret accepted a short secret")
	}
	if strings.Contains(err.Error(), content[6:]) {
		t.Errorf("error %q quotes the file content", err)
	}
	if !strings.Contains(err.Error(), path) {
		t.Errorf("error %q does not name the file", err)
	}

	_, err = LoadSecret(filepath.Join(t.TempDir(), "missing"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("LoadSecret of a missing file = %v, want os.ErrNotExist", err)
	}
}

// TestIndependentVerifier checks both sides against each other: a signature keyd makes is
// accepted by the spec-following verifier, and a tampered request is refused, so that the
// verifier cannot pass by accepting everything.
func TestIndependentVerifier(t *testing.T) {
	s, err := ParseSecret(testSecretText)
	if err != nil {
		t.Fatal(err)
	}
	id, body := "evt_0001", []byte(`{"id":"evt_0001","type":"key.activated"}`)
	now := time.Now().Unix()
	signed := func(id string, ts int64, body []byte, sig string) request {
		h := http.Header{}
		h.Set("webhook-id", id)
		h.Set("webhook-timestamp", strconv.FormatInt(ts, 10))
		h.Set("webhook-signature", sig)
		return request{Headers: h, Body: body}
	}
	good := s.Sign(id, now, body)
	tests := []struct {
		name   string
		req    request
		wantOK bool
	}{
		{name: "as signed", req: signed(id, now, body, good), wantOK: true},
		{name: "among other signatures", wantOK: true,
			req: signed(id, now, body, "v1,Zm9v "+good+" v2,YmFy")},
		{name: "tampered body", req: signed(id, now, []byte(`{"id":"evt_0001"}`), good)},
		{name: "other id", req: signed("evt_0002", now, body, good)},
		{name: "other timestamp", req: signed(id, now+1, body, good)},
		{name: "stale timestamp", req: signed(id, now-3600, body, s.Sign(id, now-3600, body))},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := runVerifier(testSecretText, tc.req)
			if ok := err == nil; ok != tc.wantOK {
				t.Fatalf("verifier accepted = %v, want %v (%s)", ok, tc.wantOK, out)
			}
		})
	}
}
