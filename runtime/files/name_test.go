package files

import (
	"mime"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

func TestSanitizeName(t *testing.T) {
	long := strings.Repeat("é", 300) + ".pdf" // 600 bytes of two-byte runes
	for _, tc := range []struct {
		name, in, want string
	}{
		{"plain", "report.pdf", "report.pdf"},
		{"unicode kept", "résumé ✓.png", "résumé ✓.png"},
		{"parent traversal", "../../etc/passwd", "passwd"},
		{"only dots", "..", FallbackName},
		{"dot", ".", FallbackName},
		{"windows path", `C:\Users\bob\..\evil.exe`, "evil.exe"},
		{"trailing slash", "dir/", FallbackName},
		{"empty", "", FallbackName},
		{"NUL", "a\x00b.txt", "ab.txt"},
		{"NUL extension trick", "evil.php\x00.png", "evil.php.png"},
		{"header injection", "x\r\nSet-Cookie: a=b.txt", "xSet-Cookie: a=b.txt"},
		{"bidi override", "invoice\u202Efdp.exe", "invoicefdp.exe"},
		{"isolates and marks", "\u2066a\u2069\u200Eb\u200F\u061C.txt", "ab.txt"},
		{"zero width", "pay\u200Bpal.txt", "paypal.txt"},
		{"tabs and separators become spaces", "a\tb\u2028c.txt", "a b c.txt"},
		{"leading and trailing dots and spaces", " ..hidden. ", "hidden"},
		{"invalid utf-8", "a\xff\xfeb.txt", "ab.txt"},
		{"only controls", "\x01\x02\u202E", FallbackName},
		{"long name keeps extension", long, strings.Repeat("é", (MaxNameBytes-4)/2) + ".pdf"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := SanitizeName(tc.in)
			if got != tc.want {
				t.Fatalf("SanitizeName(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

// TestSanitizeNameInvariants holds for any input: what comes out is short, valid UTF-8,
// a single path component and free of invisible characters.
func TestSanitizeNameInvariants(t *testing.T) {
	inputs := []string{
		strings.Repeat("a", 10000),
		strings.Repeat("日本", 200) + "." + strings.Repeat("x", 40),
		strings.Repeat("../", 100) + "x",
		"\u202E" + strings.Repeat("\x00", 50),
		strings.Repeat("😀", 100),
	}
	for _, in := range inputs {
		got := SanitizeName(in)
		if len(got) == 0 || len(got) > MaxNameBytes {
			t.Errorf("length %d out of (0,%d] for %.20q", len(got), MaxNameBytes, in)
		}
		if !utf8.ValidString(got) {
			t.Errorf("invalid UTF-8 from %.20q", in)
		}
		if strings.ContainsAny(got, `/\`) || got == "." || got == ".." {
			t.Errorf("path component in %q", got)
		}
		for _, r := range got {
			if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
				t.Errorf("invisible %U in %q", r, got)
			}
		}
	}
}

func TestContentDisposition(t *testing.T) {
	for _, tc := range []struct {
		name, file, want string
	}{
		{"ascii", "report.pdf", `attachment; filename="report.pdf"; filename*=UTF-8''report.pdf`},
		{"quotes and backslash", `a"b\c.txt`, `attachment; filename="a_b_c.txt"; filename*=UTF-8''a%22b%5Cc.txt`},
		{"unicode", "résumé.pdf", `attachment; filename="r_sum_.pdf"; filename*=UTF-8''r%C3%A9sum%C3%A9.pdf`},
		{"space and semicolon", "a b;c.txt", `attachment; filename="a b_c.txt"; filename*=UTF-8''a%20b%3Bc.txt`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := ContentDisposition("attachment", tc.file)
			if got != tc.want {
				t.Fatalf("got  %s\nwant %s", got, tc.want)
			}
			// A standard parser recovers the exact name from filename*.
			disp, params, err := mime.ParseMediaType(got)
			if err != nil || disp != "attachment" || params["filename"] != tc.file {
				t.Fatalf("parsed back as %q %v %v, want filename %q", disp, params, err, tc.file)
			}
		})
	}
}
