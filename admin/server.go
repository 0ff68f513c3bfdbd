package admin

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"
)

const (
	socketMode = 0o600
	// readTimeout bounds how long a client may take to send its request.
	readTimeout = 10 * time.Second
	// commandTimeout bounds how long one command may run (a rotation may create keys).
	commandTimeout = 2 * time.Minute
)

// Peer is the process at the other end of a connection, as the kernel reports it.
type Peer struct {
	UID uint32
	GID uint32
	PID int32
}

// Handler carries out one request from peer.
type Handler interface {
	Handle(ctx context.Context, peer Peer, req Request) Response
}

// Options tunes a Server.
type Options struct {
	// Allow decides which peer uids may send commands; by default the daemon's own
	// effective uid and root.
	Allow func(uid uint32) bool
}

// Server accepts connections on the admin socket.
type Server struct {
	path    string
	ln      *net.UnixListener
	handler Handler
	allow   func(uint32) bool
	log     *zap.Logger
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

// Listen creates the socket at path with mode 0600. A socket left by a keyd that is no
// longer running is replaced; one that still answers is an error.
func Listen(path string, h Handler, log *zap.Logger, opts Options) (*Server, error) {
	if err := removeStale(path); err != nil {
		return nil, err
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("admin socket: %w", err)
	}
	// The peer uid check below covers the moment between bind and chmod.
	if err := os.Chmod(path, socketMode); err != nil {
		ln.Close()
		return nil, fmt.Errorf("admin socket: %w", err)
	}
	if opts.Allow == nil {
		self := uint32(os.Geteuid())
		opts.Allow = func(uid uint32) bool { return uid == self || uid == 0 }
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Server{path: path, ln: ln, handler: h, allow: opts.Allow, log: log,
		ctx: ctx, cancel: cancel}, nil
}

// Path returns the socket's path.
func (s *Server) Path() string { return s.path }

// Serve accepts connections until Close; it returns nil after Close.
func (s *Server) Serve() error {
	for {
		conn, err := s.ln.AcceptUnix()
		if err != nil {
			if s.ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("admin socket: accept: %w", err)
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.serveConn(conn)
		}()
	}
}

// Close stops accepting, removes the socket and waits for commands under way.
func (s *Server) Close() error {
	s.cancel()
	err := s.ln.Close()
	s.wg.Wait()
	return err
}

func (s *Server) serveConn(conn *net.UnixConn) {
	defer conn.Close()
	peer, err := peerOf(conn)
	if err != nil {
		s.log.Warn("admin socket: peer credentials unavailable", zap.Error(err))
		return
	}
	// The request is read (bounded) before the peer is judged, so that a refused client
	// reads the reason instead of a broken pipe.
	_ = conn.SetReadDeadline(time.Now().Add(readTimeout))
	req, readErr := readRequest(conn)
	if !s.allow(peer.UID) {
		s.log.Warn("admin socket: refused peer", zap.Uint32("peer_uid", peer.UID),
			zap.Int32("peer_pid", peer.PID))
		s.reply(conn, Response{Error: fmt.Sprintf("uid %d may not use the admin socket; "+
			"run as the user keyd runs as, or as root", peer.UID)})
		return
	}
	if readErr != nil {
		s.reply(conn, Response{Error: readErr.Error()})
		return
	}
	ctx, cancel := context.WithTimeout(s.ctx, commandTimeout)
	defer cancel()
	s.reply(conn, s.handler.Handle(ctx, peer, req))
}

func (s *Server) reply(conn *net.UnixConn, resp Response) {
	_ = conn.SetWriteDeadline(time.Now().Add(readTimeout))
	if err := json.NewEncoder(conn).Encode(resp); err != nil {
		s.log.Debug("admin socket: write response", zap.Error(err))
	}
}

// readRequest reads one JSON request of at most MaxRequestBytes.
func readRequest(r io.Reader) (Request, error) {
	limited := &io.LimitedReader{R: r, N: MaxRequestBytes + 1}
	line, err := bufio.NewReaderSize(limited, 4096).ReadBytes('\n')
	if limited.N <= 0 {
		return Request{}, fmt.Errorf("request larger than %d bytes", MaxRequestBytes)
	}
	if err != nil && !errors.Is(err, io.EOF) {
		return Request{}, fmt.Errorf("read request: %w", err)
	}
	var req Request
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return Request{}, fmt.Errorf("decode request: %w", err)
	}
	return req, nil
}

// peerOf asks the kernel who is at the other end of conn.
func peerOf(conn *net.UnixConn) (Peer, error) {
	raw, err := conn.SyscallConn()
	if err != nil {
		return Peer{}, err
	}
	var (
		cred    *unix.Ucred
		credErr error
	)
	err = raw.Control(func(fd uintptr) {
		cred, credErr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	})
	if err != nil {
		return Peer{}, err
	}
	if credErr != nil {
		return Peer{}, fmt.Errorf("SO_PEERCRED: %w", credErr)
	}
	return Peer{UID: cred.Uid, GID: cred.Gid, PID: cred.Pid}, nil
}

// removeStale deletes a socket at path that no process listens on any more.
func removeStale(path string) error {
	info, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("admin socket: %w", err)
	}
	if info.Mode().Type() != os.ModeSocket {
		return fmt.Errorf("admin socket: %s exists and is not a socket", path)
	}
	conn, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		conn.Close()
		return fmt.Errorf("admin socket: %s is in use by another keyd", path)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("admin socket: %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("admin socket: remove stale %s: %w", path, err)
	}
	return nil
}
