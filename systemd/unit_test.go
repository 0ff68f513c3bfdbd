// Package systemd_test checks the files that install keyd as a system service with
// systemd's own tools.
package systemd_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// maxExposure is the highest overall exposure `systemd-analyze security` may rate the unit.
const maxExposure = 2.0

// installedBinary is the ExecStart path the unit names.
const installedBinary = "/usr/local/bin/keyd"

var exposureLine = regexp.MustCompile(`Overall exposure level for \S+: ([0-9.]+)`)

func TestUnitSecurityExposure(t *testing.T) {
	analyze := systemdAnalyze(t)
	out, err := exec.Command(analyze, "security", "--offline=true", "--no-pager",
		"keyd.service").CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze security: %v\n%s", err, out)
	}
	m := exposureLine.FindSubmatch(out)
	if m == nil {
		t.Fatalf("no overall exposure in the output:\n%s", out)
	}
	exposure, err := strconv.ParseFloat(string(m[1]), 64)
	if err != nil {
		t.Fatal(err)
	}
	if exposure > maxExposure {
		t.Errorf("overall exposure %.1f, want at most %.1f:\n%s", exposure, maxExposure, out)
	}
	t.Logf("overall exposure %.1f", exposure)
}

func TestUnitVerifies(t *testing.T) {
	analyze := systemdAnalyze(t)
	unit, err := os.ReadFile("keyd.service")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(unit), "ExecStart="+installedBinary+" ") {
		t.Fatalf("keyd.service does not start %s", installedBinary)
	}

	// verify wants ExecStart's binary to exist; a stand-in in a temp dir takes its place.
	dir := t.TempDir()
	binary := filepath.Join(dir, "keyd")
	if err := os.WriteFile(binary, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	moved := strings.ReplaceAll(string(unit), installedBinary, binary)
	path := filepath.Join(dir, "keyd.service")
	if err := os.WriteFile(path, []byte(moved), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", "--man=no", path).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}

func TestUnitSettings(t *testing.T) {
	unit, err := os.ReadFile("keyd.service")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		line string
	}{
		{name: "notifies readiness", line: "Type=notify"},
		{name: "reload sends SIGHUP", line: "ExecReload=/bin/kill -HUP $MAINPID"},
		{name: "restarts on failure", line: "Restart=on-failure"},
		{name: "has a watchdog", line: "WatchdogSec=60s"},
		{name: "state dir for keyd and its group", line: "StateDirectoryMode=0750"},
		{name: "private runtime dir", line: "RuntimeDirectoryMode=0700"},
		{name: "dedicated user", line: "User=keyd"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !containsLine(string(unit), tc.line) {
				t.Errorf("keyd.service lacks %q", tc.line)
			}
		})
	}
}

// TestSysusersAndTmpfiles applies both files to an empty root: the user is created and
// the configuration directory gets its owner and mode.
func TestSysusersAndTmpfiles(t *testing.T) {
	root := t.TempDir()
	if err := os.Mkdir(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		tool string
		args []string
	}{
		{name: "sysusers", tool: "systemd-sysusers", args: []string{"keyd.sysusers"}},
		{name: "tmpfiles", tool: "systemd-tmpfiles", args: []string{"--create", "keyd.tmpfiles"}},
	} {
		tool, err := exec.LookPath(tc.tool)
		if err != nil {
			t.Fatalf("%s not installed (.ci/run installs Debian's systemd)", tc.tool)
		}
		abs, err := filepath.Abs(tc.args[len(tc.args)-1])
		if err != nil {
			t.Fatal(err)
		}
		args := append([]string{"--root=" + root}, tc.args[:len(tc.args)-1]...)
		out, err := exec.Command(tool, append(args, abs)...).CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", tc.name, err, out)
		}
	}
	passwd, err := os.ReadFile(filepath.Join(root, "etc", "passwd"))
	if err != nil || !strings.HasPrefix(string(passwd), "keyd:") {
		t.Errorf("no keyd user after sysusers: %v %q", err, passwd)
	}
	info, err := os.Stat(filepath.Join(root, "etc", "keyd"))
	if err != nil {
		t.Fatal(err)
	}
	if mode := info.Mode().Perm(); mode != 0o750 {
		t.Errorf("/etc/keyd mode %o, want 750", mode)
	}
}

func systemdAnalyze(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Fatal("systemd-analyze not installed (.ci/run installs Debian's systemd)")
	}
	return path
}

func containsLine(text, line string) bool {
	for _, l := range strings.Split(text, "\n") {
		if strings.TrimSpace(l) == line {
			return true
		}
	}
	return false
}
