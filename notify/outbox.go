package notify

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/keyd-io/keyd/internal/atomicfile"
)

// Outbox layout:
//
//	<dir>/.lock                              held by the one keyd using dir
//	<dir>/<destination>/<seq>-<id>.json      one delivery of one event to one destination
//	<dir>/<destination>/<seq>-<id>.prepared  the same, for a commit not yet known to have
//	                                         landed: never sent as it is
//
// A file is written (temp, fsync, rename, fsync dir) before the first attempt and removed
// once the delivery is done or given up. A prepared file is written before the state
// write it announces, renamed to .json once the state is known to hold that write, and
// removed when it is known not to. The zero-padded sequence number keeps the event order
// of each destination across restarts.
const (
	outboxLock     = ".lock"
	outboxDirMode  = 0o700
	outboxFileMode = 0o600
	recordExt      = ".json"
	preparedExt    = ".prepared"
	corruptExt     = ".corrupt"
)

// record is the content of one outbox file.
type record struct {
	ID          string    `json:"id"`
	Destination string    `json:"destination"`
	CreatedAt   time.Time `json:"created_at"`
	// Keyset and Commit name the state write that announces the event; empty for events
	// queued as already committed.
	Keyset string `json:"keyset,omitempty"`
	Commit string `json:"commit,omitempty"`
	// Body is the event exactly as every attempt sends it, so each signature covers the
	// same bytes.
	Body json.RawMessage `json:"body"`
}

// pending is a record and where it lives.
type pending struct {
	record
	path  string
	seq   uint64
	event Event
}

// outbox is the directory of pending deliveries.
type outbox struct {
	dir  string
	lock *os.File
}

// openOutbox creates dir and takes its lock, so that two keyds never deliver from the
// same outbox.
func openOutbox(dir string) (*outbox, error) {
	if err := mkdirSynced(dir); err != nil {
		return nil, fmt.Errorf("create outbox: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(dir, outboxLock), os.O_RDWR|os.O_CREATE,
		outboxFileMode)
	if err != nil {
		return nil, fmt.Errorf("open outbox lock: %w", err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lock.Close()
		return nil, fmt.Errorf("lock outbox %s: %w", dir, err)
	}
	return &outbox{dir: dir, lock: lock}, nil
}

// close releases the lock.
func (o *outbox) close() error { return o.lock.Close() }

// prepare creates the directory of destination dest, durably, before any record is put
// in it: a record renamed into a directory whose own entry was never synced could vanish
// with it in a crash.
func (o *outbox) prepare(dest string) error {
	if err := mkdirSynced(filepath.Join(o.dir, dest)); err != nil {
		return fmt.Errorf("create outbox dir: %w", err)
	}
	return nil
}

// add durably stores rec as delivery number seq of destination dest, which prepare
// created; as a prepared record when prepared is set.
func (o *outbox) add(dest string, seq uint64, rec record, prepared bool) (*pending, error) {
	dir := filepath.Join(o.dir, dest)
	data, err := json.Marshal(rec)
	if err != nil {
		return nil, fmt.Errorf("encode outbox record: %w", err)
	}
	ext := recordExt
	if prepared {
		ext = preparedExt
	}
	path := filepath.Join(dir, fmt.Sprintf("%020d-%s%s", seq, rec.ID, ext))
	if err := atomicfile.Write(path, data, outboxFileMode); err != nil {
		return nil, fmt.Errorf("write outbox record: %w", err)
	}
	p := &pending{record: rec, path: path, seq: seq}
	if err := json.Unmarshal(rec.Body, &p.event); err != nil {
		return nil, fmt.Errorf("decode event: %w", err)
	}
	return p, nil
}

// confirm makes the prepared record p sendable, durably: the rename is the moment the
// event becomes due.
func (o *outbox) confirm(p *pending) error {
	path := strings.TrimSuffix(p.path, preparedExt) + recordExt
	if err := os.Rename(p.path, path); err != nil {
		return fmt.Errorf("confirm outbox record: %w", err)
	}
	p.path = path
	if err := atomicfile.SyncDir(filepath.Dir(path)); err != nil {
		return fmt.Errorf("sync outbox dir: %w", err)
	}
	return nil
}

// load returns the sendable and the prepared deliveries of dest, each in order. Leftover
// temporary files are removed; a file that cannot be read is renamed to *.corrupt and
// reported in the error list, so that it neither blocks the others nor disappears unseen.
func (o *outbox) load(dest string) (ready, prepared []*pending, errs []error) {
	dir := filepath.Join(o.dir, dest)
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, []error{fmt.Errorf("read outbox dir: %w", err)}
	}
	for _, e := range entries {
		name := e.Name()
		path := filepath.Join(dir, name)
		isReady, isPrepared := strings.HasSuffix(name, recordExt),
			strings.HasSuffix(name, preparedExt)
		switch {
		case atomicfile.IsTemp(name):
			_ = os.Remove(path) // an interrupted write; the event was never acknowledged
		case isReady || isPrepared:
			p, err := readPending(path)
			if err != nil {
				errs = append(errs, fmt.Errorf("outbox file %s: %w (moved aside to %s)",
					path, err, corruptExt))
				_ = os.Rename(path, path+corruptExt)
				continue
			}
			if isPrepared {
				prepared = append(prepared, p)
			} else {
				ready = append(ready, p)
			}
		}
	}
	bySeq := func(a, b *pending) int { return cmp.Compare(a.seq, b.seq) }
	slices.SortFunc(ready, bySeq)
	slices.SortFunc(prepared, bySeq)
	return ready, prepared, errs
}

// destinations lists the destination directories in the outbox.
func (o *outbox) destinations() ([]string, error) {
	entries, err := os.ReadDir(o.dir)
	if err != nil {
		return nil, fmt.Errorf("read outbox: %w", err)
	}
	var out []string
	for _, e := range entries {
		if e.IsDir() {
			out = append(out, e.Name())
		}
	}
	return out, nil
}

// remove deletes a delivered, abandoned or aborted record durably.
func (o *outbox) remove(p *pending) error {
	if err := os.Remove(p.path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove outbox record: %w", err)
	}
	if err := atomicfile.SyncDir(filepath.Dir(p.path)); err != nil {
		return fmt.Errorf("sync outbox dir: %w", err)
	}
	return nil
}

func readPending(path string) (*pending, error) {
	name := filepath.Base(path)
	seqText, _, ok := strings.Cut(name, "-")
	seq, err := strconv.ParseUint(seqText, 10, 64)
	if !ok || err != nil {
		return nil, errors.New("name does not start with a sequence number")
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	p := &pending{path: path, seq: seq}
	if err := json.Unmarshal(data, &p.record); err != nil {
		return nil, fmt.Errorf("decode: %w", err)
	}
	if err := json.Unmarshal(p.Body, &p.event); err != nil {
		return nil, fmt.Errorf("decode event: %w", err)
	}
	if p.ID == "" || p.ID != p.event.ID {
		return nil, errors.New("record id does not match its event")
	}
	return p, nil
}

// mkdirSynced creates dir (and its parents) and syncs the parent, so that the new entry
// survives a crash.
func mkdirSynced(dir string) error {
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	if err := os.MkdirAll(dir, outboxDirMode); err != nil {
		return err
	}
	return atomicfile.SyncDir(filepath.Dir(dir))
}
