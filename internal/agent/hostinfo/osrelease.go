package hostinfo

// parseOSRelease parses the contents of an os-release(5) file into its assignments.
//
// The format is a restricted shell: one KEY=VALUE assignment per line, blank lines and lines
// starting with '#' ignored. Values may be unquoted, 'single-quoted' (literal) or
// "double-quoted" (where a backslash escapes $ ` " \ and newline), and the pieces may be
// concatenated as in a shell word. An unquoted backslash escapes the next character. A quoted
// value may span lines. Anything after the value on the same line (such as a trailing comment)
// is ignored, as are lines that are not assignments. Malformed input never fails: an
// unterminated quote ends the value at the end of the input. When a key is assigned twice the
// last assignment wins.
func parseOSRelease(data []byte) map[string]string {
	out := make(map[string]string)
	i, n := 0, len(data)
	for i < n {
		// Skip whitespace, including blank lines.
		for i < n && isSpace(data[i]) {
			i++
		}
		if i >= n {
			break
		}
		if data[i] == '#' {
			i = skipLine(data, i)
			continue
		}
		// Key: [A-Za-z_][A-Za-z0-9_]*, immediately followed by '='.
		start := i
		for i < n && isKeyByte(data[i], i == start) {
			i++
		}
		if i == start || i >= n || data[i] != '=' {
			i = skipLine(data, i)
			continue
		}
		key := string(data[start:i])
		i++ // '='
		var val []byte
		val, i = parseWord(data, i)
		out[key] = string(val)
		i = skipLine(data, i)
	}
	return out
}

// parseWord reads one shell word starting at i and returns its unquoted value and the index
// just past it. The word ends at an unquoted blank or newline, or at the end of data.
func parseWord(data []byte, i int) ([]byte, int) {
	val := make([]byte, 0, 32)
	n := len(data)
	for i < n {
		c := data[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			return val, i
		case c == '\\':
			i++
			if i >= n {
				return val, i
			}
			if data[i] != '\n' { // backslash-newline is a line continuation
				val = append(val, data[i])
			}
			i++
		case c == '\'':
			i++
			for i < n && data[i] != '\'' {
				val = append(val, data[i])
				i++
			}
			if i < n {
				i++ // closing quote
			}
		case c == '"':
			i++
			for i < n && data[i] != '"' {
				if data[i] == '\\' && i+1 < n {
					switch data[i+1] {
					case '$', '`', '"', '\\':
						val = append(val, data[i+1])
						i += 2
						continue
					case '\n':
						i += 2
						continue
					}
				}
				val = append(val, data[i])
				i++
			}
			if i < n {
				i++ // closing quote
			}
		default:
			val = append(val, c)
			i++
		}
	}
	return val, i
}

// skipLine returns the index just past the next newline at or after i.
func skipLine(data []byte, i int) int {
	for i < len(data) && data[i] != '\n' {
		i++
	}
	if i < len(data) {
		i++
	}
	return i
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'
}

func isKeyByte(c byte, first bool) bool {
	switch {
	case c == '_', c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z':
		return true
	case c >= '0' && c <= '9':
		return !first
	}
	return false
}

// ReadOSRelease reads the os-release(5) assignments of the system rooted at root ("/" for this
// host): /etc/os-release, else /usr/lib/os-release.
func ReadOSRelease(root string) (map[string]string, error) {
	return newCollector(root).osRelease()
}
