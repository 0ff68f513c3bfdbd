package main

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// readyLimit bounds how long a keyd may take to answer /readyz 200.
const readyLimit = 5 * time.Minute

// client talks to the servers under test over loopback only.
var client = &http.Client{Timeout: 10 * time.Second}

// process is a server started by keydbench.
type process struct {
	cmd    *exec.Cmd
	exited chan struct{}
	addr   string
	log    string
}

// freeAddr returns a loopback address whose port was free a moment ago.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// start runs argv with its output in logFile; stopAll kills it if it still runs.
func start(addr, logFile string, argv ...string) (*process, error) {
	out, err := os.Create(logFile)
	if err != nil {
		return nil, err
	}
	p := &process{cmd: exec.Command(argv[0], argv[1:]...), exited: make(chan struct{}),
		addr: addr, log: logFile}
	p.cmd.Stdout, p.cmd.Stderr = out, out
	if err := p.cmd.Start(); err != nil {
		out.Close()
		return nil, fmt.Errorf("start %s: %w", argv[0], err)
	}
	go func() {
		_ = p.cmd.Wait()
		out.Close()
		close(p.exited)
	}()
	cleanups = append(cleanups, p.end)
	return p, nil
}

// startKeyd writes a keyd configuration for data (the text of its [[keyset]] tables in
// keysets) and runs keyd on it.
func startKeyd(binary, data, keysets string) (*process, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	config := filepath.Join(data, "keyd.toml")
	body := fmt.Sprintf("[server]\nlisten = %q\n[log]\nlevel = \"warn\"\n"+
		"[storage.disk]\ndir = %q\n%s", addr, filepath.Join(data, "keys"), keysets)
	if err := os.WriteFile(config, []byte(body), 0o600); err != nil {
		return nil, err
	}
	return start(addr, filepath.Join(data, "keyd.log"), binary, "run", "--config", config)
}

func (p *process) url(path string) string { return "http://" + p.addr + path }

// waitReady polls path until it answers 200 and returns how long that took from start.
func (p *process) waitReady(path string, started time.Time) (time.Duration, error) {
	deadline := started.Add(readyLimit)
	status := "no answer"
	for {
		resp, err := client.Get(p.url(path))
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return time.Since(started), nil
			}
			status = resp.Status
		}
		select {
		case <-p.exited:
			return 0, fmt.Errorf("%s exited before %s answered 200; log %s",
				p.cmd.Path, path, p.log)
		case <-time.After(time.Millisecond):
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("%s not ready within %s (%s); log %s", p.cmd.Path,
				readyLimit, status, p.log)
		}
	}
}

func (p *process) signal(sig os.Signal) error { return p.cmd.Process.Signal(sig) }

// stop asks the process to end with SIGTERM and waits, killing it after a minute.
func (p *process) stop() error {
	if err := p.signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	select {
	case <-p.exited:
		return nil
	case <-time.After(time.Minute):
		p.kill()
		return fmt.Errorf("%s did not stop within a minute", p.cmd.Path)
	}
}

// end stops the process if it still runs: SIGTERM first, so that a server with worker
// processes (nginx) takes them down too, then SIGKILL after five seconds.
func (p *process) end() {
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(5 * time.Second):
		p.kill()
	}
}

func (p *process) kill() {
	select {
	case <-p.exited:
	default:
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// memory reads a process's peak and current resident set size from /proc.
func memory(pid int) (peak, now int64, err error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		name, value, ok := strings.Cut(line, ":")
		if !ok || (name != "VmHWM" && name != "VmRSS") {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(value), " kB"), 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("/proc/%d/status %s: %w", pid, name, err)
		}
		if name == "VmHWM" {
			peak = kb << 10
		} else {
			now = kb << 10
		}
	}
	return peak, now, nil
}

// clockTick is the unit of utime and stime in /proc/<pid>/stat (USER_HZ, 100 on Linux).
const clockTick = 10 * time.Millisecond

// children lists the processes whose parent is pid.
func children(pid int) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []int
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue // not a process
		}
		if f, err := statFields(child); err == nil && f[1] == strconv.Itoa(pid) {
			out = append(out, child)
		}
	}
	return out
}

// statFields returns the fields of /proc/<pid>/stat after "pid (comm)": state first.
func statFields(pid int) ([]string, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil, err
	}
	// comm may hold spaces and parentheses; it ends at the last ')'.
	i := strings.LastIndexByte(string(data), ')')
	if i < 0 {
		return nil, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(string(data[i+1:]))
	if len(f) < 13 {
		return nil, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	return f, nil
}

// treeCPU returns the user and system CPU time used so far by pid and its children.
func treeCPU(pid int) (time.Duration, error) {
	var total time.Duration
	for _, p := range append(children(pid), pid) {
		f, err := statFields(p)
		if err != nil {
			return 0, err
		}
		// utime and stime are fields 14 and 15 of stat, 12 and 13 after the comm.
		for _, field := range f[11:13] {
			ticks, err := strconv.ParseInt(field, 10, 64)
			if err != nil {
				return 0, fmt.Errorf("/proc/%d/stat: %w", p, err)
			}
			total += time.Duration(ticks) * clockTick
		}
	}
	return total, nil
}
