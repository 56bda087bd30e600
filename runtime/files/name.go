package files

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxNameBytes bounds a sanitized name: the common file-system limit, so that a saved
// download keeps its name everywhere.
const MaxNameBytes = 255

// maxExtBytes is the longest extension kept when a name is shortened.
const maxExtBytes = 16

// FallbackName replaces names that sanitize to nothing.
const FallbackName = "file"

// SanitizeName makes a client-supplied file name safe to store and to offer back in
// Content-Disposition: only the last path component survives (so `../` and `C:\` tricks
// do nothing), NUL, control, bidi and other invisible format characters and invalid
// UTF-8 are dropped, leading and trailing dots and spaces are trimmed, and the result is
// at most MaxNameBytes long, cut on a character boundary with the extension kept.
func SanitizeName(name string) string {
	name = strings.ReplaceAll(name, `\`, "/")
	if i := strings.LastIndexByte(name, '/'); i >= 0 {
		name = name[i+1:]
	}
	var b strings.Builder
	for i, w := 0, 0; i < len(name); i += w {
		r, size := utf8.DecodeRuneInString(name[i:])
		w = size
		switch {
		case r == utf8.RuneError && size <= 1:
			continue // invalid UTF-8
		case r == '\t':
			b.WriteByte(' ')
		case unicode.IsControl(r), unicode.Is(unicode.Cf, r): // Cf holds the bidi overrides and zero-width characters
			continue
		case unicode.IsSpace(r):
			b.WriteByte(' ') // line and paragraph separators, exotic spaces
		default:
			b.WriteRune(r)
		}
	}
	name = strings.Trim(b.String(), " .")
	if name == "" {
		return FallbackName
	}
	if len(name) > MaxNameBytes {
		name = shorten(name, MaxNameBytes)
	}
	return name
}

// shorten cuts name to at most max bytes on a rune boundary, keeping a short extension.
func shorten(name string, max int) string {
	ext := ""
	if i := strings.LastIndexByte(name, '.'); i > 0 && len(name)-i <= maxExtBytes {
		ext = name[i:]
		name = name[:i]
	}
	name = truncateUTF8(name, max-len(ext))
	name = strings.TrimRight(name, " .")
	if name == "" {
		return FallbackName + ext
	}
	return name + ext
}

// truncateUTF8 returns the longest prefix of s of at most n bytes that ends on a rune
// boundary.
func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// ContentDisposition builds the header value for serving a file (RFC 6266): an ASCII
// fallback in filename= for old clients and the exact UTF-8 name in filename*= (RFC 8187).
// disposition is "attachment" or "inline".
func ContentDisposition(disposition, name string) string {
	var ascii strings.Builder
	for _, r := range name {
		switch {
		case r < 0x20 || r >= 0x7f || r == '"' || r == '\\' || r == '%' || r == ';':
			ascii.WriteByte('_')
		default:
			ascii.WriteRune(r)
		}
	}
	return disposition + `; filename="` + ascii.String() + `"; filename*=UTF-8''` + encodeRFC8187(name)
}

// encodeRFC8187 percent-encodes everything but attr-char.
func encodeRFC8187(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if isAttrChar(c) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&0xf])
	}
	return b.String()
}

func isAttrChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$&+-.^_`|~", c) >= 0
}
