package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"time"
)

// ErrNotRunning means no keyd listens on the admin socket.
var ErrNotRunning = errors.New("keyd is not running")

// Client sends commands to a running keyd.
type Client struct {
	// Socket is the admin socket's path (server.admin_socket).
	Socket string
	// Timeout bounds one command; commandTimeout plus a margin when zero.
	Timeout time.Duration
}

// Do sends req and returns the daemon's response. A response that reports a failure is
// returned as an error.
func (c *Client) Do(ctx context.Context, req Request) (*Response, error) {
	timeout := c.Timeout
	if timeout == 0 {
		timeout = commandTimeout + 10*time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", c.Socket)
	if err != nil {
		return nil, c.dialError(err)
	}
	defer conn.Close()
	if deadline, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(deadline)
	}
	// A failed send is reported only when no answer explains it: the daemon may have
	// answered a refusal and closed before reading everything.
	sendErr := json.NewEncoder(conn).Encode(req)
	data, err := io.ReadAll(io.LimitReader(conn, MaxResponseBytes))
	if sendErr != nil && len(bytes.TrimSpace(data)) == 0 {
		return nil, fmt.Errorf("send %s to %s: %w", req.Command, c.Socket, sendErr)
	}
	if err != nil && len(data) == 0 {
		return nil, fmt.Errorf("read answer from %s: %w", c.Socket, err)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, fmt.Errorf("%s closed the connection without an answer", c.Socket)
	}
	var resp Response
	if err := json.Unmarshal(data, &resp); err != nil {
		return nil, fmt.Errorf("decode answer from %s: %w", c.Socket, err)
	}
	if resp.Error != "" {
		return &resp, errors.New(resp.Error)
	}
	return &resp, nil
}

// dialError explains why the socket could not be reached.
func (c *Client) dialError(err error) error {
	switch {
	case errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("%w: no admin socket at %s (is keyd running, and is this the "+
			"configuration it runs with?)", ErrNotRunning, c.Socket)
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Errorf("%w: nothing listens on %s", ErrNotRunning, c.Socket)
	case errors.Is(err, os.ErrPermission):
		return fmt.Errorf("admin socket %s: permission denied: run as the user keyd runs "+
			"as, or as root", c.Socket)
	}
	return fmt.Errorf("admin socket %s: %w", c.Socket, err)
}
