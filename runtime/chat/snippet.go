package chat

import (
	"strings"
	"unicode"
)

// Word is one word of a text: a run of letters and digits, lower-cased, with its
// [Start, End) offsets in code points.
type Word struct {
	Text       string
	Start, End int
}

// Words splits s the way PostgreSQL's 'simple' configuration does for plain words.
func Words(s string) []Word {
	var out []Word
	start, i := -1, 0
	var b strings.Builder
	for _, r := range s {
		if unicode.IsLetter(r) || unicode.IsDigit(r) {
			if start < 0 {
				start = i
				b.Reset()
			}
			b.WriteRune(unicode.ToLower(r))
		} else if start >= 0 {
			out = append(out, Word{b.String(), start, i})
			start = -1
		}
		i++
	}
	if start >= 0 {
		out = append(out, Word{b.String(), start, i})
	}
	return out
}

// Snippet words.
const (
	SnippetWords = 35 // a longer body is cut to this many words
	snippetLead  = 5  // words kept before the first hit
)

// Snippet cuts body (split into words) around its hits (indexes into words): a short
// body whole, a long one to SnippetWords words starting a little before the first hit.
// It returns the text, verbatim from body, and the hits as [start, end) code point
// ranges in it. Both stores build their snippets here, so they look alike; the text is
// never markup.
func Snippet(body string, words []Word, hits map[int]bool) (string, [][2]int) {
	rs := []rune(body)
	from, to := 0, len(rs)
	first, last := 0, len(words)
	if len(words) > SnippetWords {
		firstHit := len(words)
		for i := range hits {
			firstHit = min(firstHit, i)
		}
		first = max(0, min(firstHit-snippetLead, len(words)-SnippetWords))
		last = first + SnippetWords
		from, to = words[first].Start, words[last-1].End
	}
	hl := [][2]int{}
	for i := first; i < last; i++ {
		if hits[i] {
			hl = append(hl, [2]int{words[i].Start - from, words[i].End - from})
		}
	}
	return string(rs[from:to]), hl
}
