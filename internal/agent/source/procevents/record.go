package procevents

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strconv"
	"time"
)

// Audit record types this source reads (linux/audit.h). Other types in an event are skipped.
const (
	typeSyscall   = 1300
	typePath      = 1302
	typeSockaddr  = 1306
	typeCwd       = 1307
	typeExecve    = 1309
	typeEOE       = 1320
	typeProctitle = 1327
)

// record is one audit record: "audit(1700000000.123:456): key=value key=value ...".
// Body points into the received buffer and is only valid until the next receive.
type record struct {
	typ    uint16
	time   time.Time
	serial uint64
	body   []byte
}

var errHeader = errors.New("audit record: no audit(sec.ms:serial) header")

// parseRecord splits the header off a record's text.
func parseRecord(typ uint16, data []byte) (record, error) {
	r := record{typ: typ}
	rest, ok := bytes.CutPrefix(data, []byte("audit("))
	if !ok {
		return r, errHeader
	}
	end := bytes.IndexByte(rest, ')')
	if end < 0 {
		return r, errHeader
	}
	stamp := rest[:end]
	colon := bytes.IndexByte(stamp, ':')
	dot := bytes.IndexByte(stamp, '.')
	if colon < 0 || dot < 0 || dot > colon {
		return r, errHeader
	}
	sec, err1 := strconv.ParseInt(string(stamp[:dot]), 10, 64)
	msec, err2 := strconv.ParseInt(string(stamp[dot+1:colon]), 10, 64)
	serial, err3 := strconv.ParseUint(string(stamp[colon+1:]), 10, 64)
	if err1 != nil || err2 != nil || err3 != nil || msec < 0 || msec > 999 {
		return r, errHeader
	}
	r.time = time.Unix(sec, msec*int64(time.Millisecond))
	r.serial = serial
	r.body = bytes.TrimLeft(rest[end+1:], ": ")
	return r, nil
}

// field returns the raw value of key in a record body ("" and false when absent).
func field(body []byte, key string) ([]byte, bool) {
	var out []byte
	found := false
	eachField(body, func(name, value []byte) bool {
		if string(name) == key {
			out, found = value, true
			return false
		}
		return true
	})
	return out, found
}

// eachField calls fn for every key=value pair of a record body until fn returns false. Values
// are separated by spaces; a quoted value may hold spaces. The kernel writes untrusted strings
// either quoted (only when they hold no space, quote or control character) or hex-encoded, so
// a quote inside a value never occurs and scanning is unambiguous.
func eachField(body []byte, fn func(name, value []byte) bool) {
	for i := 0; i < len(body); {
		for i < len(body) && body[i] == ' ' {
			i++
		}
		start := i
		for i < len(body) && body[i] != '=' && body[i] != ' ' {
			i++
		}
		name := body[start:i]
		if i >= len(body) || body[i] != '=' {
			continue // a bare word; skip it
		}
		i++
		vstart := i
		if i < len(body) && body[i] == '"' {
			end := bytes.IndexByte(body[i+1:], '"')
			if end < 0 {
				i = len(body)
			} else {
				i += end + 2
			}
		} else {
			for i < len(body) && body[i] != ' ' {
				i++
			}
		}
		if !fn(name, body[vstart:i]) {
			return
		}
	}
}

// text decodes an untrusted string value: quoted as is, unquoted as hex; "(null)" and
// "(none)" are empty.
func text(v []byte) string {
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		return string(v[1 : len(v)-1])
	}
	if len(v) == 0 || v[0] == '(' {
		return ""
	}
	out := make([]byte, hex.DecodedLen(len(v)))
	if _, err := hex.Decode(out, v); err != nil {
		return string(v) // not hex after all: keep what the kernel wrote
	}
	return string(out)
}

// textField is field then text.
func textField(body []byte, key string) string {
	v, _ := field(body, key)
	return text(v)
}

// uintField parses a decimal field; it returns def when the field is absent or malformed.
func uintField(body []byte, key string, def uint64) uint64 {
	v, ok := field(body, key)
	if !ok {
		return def
	}
	n, err := strconv.ParseUint(string(v), 10, 64)
	if err != nil {
		return def
	}
	return n
}

// intField parses a signed decimal field (exit codes).
func intField(body []byte, key string) (int64, bool) {
	v, ok := field(body, key)
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(string(v), 10, 64)
	return n, err == nil
}

// hexField parses a hexadecimal field (arch, a0-a3).
func hexField(body []byte, key string) (uint64, bool) {
	v, ok := field(body, key)
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseUint(string(v), 16, 64)
	return n, err == nil
}
