package pgtest

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

// PGError is an ErrorResponse from the server, as returned by Exec and
// CreateDatabase (wrapped).
type PGError struct {
	Severity string
	Code     string // SQLSTATE, e.g. "42P04" duplicate_database
	Message  string
}

func (e *PGError) Error() string {
	return fmt.Sprintf("%s: %s (SQLSTATE %s)", e.Severity, e.Message, e.Code)
}

// simpleQuery is a minimal PostgreSQL wire-protocol (v3) client: it connects
// to addr with trust authentication, runs query with the simple query
// protocol, discards any rows and returns the first error.
func simpleQuery(ctx context.Context, addr, user, database, query string) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	msg := []byte{0, 0, 0, 0, 0, 3, 0, 0} // length, protocol 3.0
	for _, s := range []string{"user", user, "database", database} {
		msg = append(msg, s...)
		msg = append(msg, 0)
	}
	msg = append(msg, 0)
	binary.BigEndian.PutUint32(msg, uint32(len(msg)))
	if _, err := conn.Write(msg); err != nil {
		return err
	}
	r := bufio.NewReader(conn)
	if err := readUntilReady(r, true); err != nil {
		return err
	}

	msg = append([]byte{'Q', 0, 0, 0, 0}, query...)
	msg = append(msg, 0)
	binary.BigEndian.PutUint32(msg[1:], uint32(len(msg)-1))
	if _, err := conn.Write(msg); err != nil {
		return err
	}
	err = readUntilReady(r, false)
	_, _ = conn.Write([]byte{'X', 0, 0, 0, 4}) // Terminate
	return err
}

// readUntilReady consumes messages up to ReadyForQuery. During startup an
// ErrorResponse ends the exchange; during a query the first one is returned
// once the server is ready again.
func readUntilReady(r *bufio.Reader, startup bool) error {
	var first error
	var hdr [5]byte
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return err
		}
		n := int(binary.BigEndian.Uint32(hdr[1:])) - 4
		if n < 0 || n > 64<<20 {
			return fmt.Errorf("pgtest: bad message length %d", n)
		}
		body := make([]byte, n)
		if _, err := io.ReadFull(r, body); err != nil {
			return err
		}
		switch hdr[0] {
		case 'R': // Authentication*
			if n < 4 {
				return errors.New("pgtest: short authentication message")
			}
			if code := binary.BigEndian.Uint32(body); code != 0 {
				return fmt.Errorf("pgtest: server wants authentication method %d; only trust is supported", code)
			}
		case 'E': // ErrorResponse
			e := parseError(body)
			if startup {
				return e
			}
			if first == nil {
				first = e
			}
		case 'G', 'H', 'W': // CopyIn/CopyOut/CopyBoth
			return errors.New("pgtest: COPY is not supported")
		case 'Z': // ReadyForQuery
			return first
		}
	}
}

func parseError(body []byte) *PGError {
	e := &PGError{}
	for len(body) > 0 && body[0] != 0 {
		field := body[0]
		body = body[1:]
		end := 0
		for end < len(body) && body[end] != 0 {
			end++
		}
		val := string(body[:end])
		if end < len(body) {
			end++
		}
		body = body[end:]
		switch field {
		case 'S':
			e.Severity = val
		case 'C':
			e.Code = val
		case 'M':
			e.Message = val
		}
	}
	return e
}
