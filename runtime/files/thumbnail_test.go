package files

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"
	"os"
	"testing"

	"github.com/gabriel-vasile/mimetype"
)

// gradient is an opaque test picture of w×h.
func gradient(w, h int) *image.NRGBA {
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.Set(x, y, color.NRGBA{uint8(x), uint8(y), uint8(x + y), 255})
		}
	}
	return img
}

func encodeJPEG(t testing.TB, w, h int) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := jpeg.Encode(&b, gradient(w, h), nil); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func encodePNG(t testing.TB, img image.Image) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// encodeGIF makes an animation whose first frame is red and second blue.
func encodeGIF(t testing.TB, w, h int) []byte {
	t.Helper()
	pal := color.Palette{color.RGBA{255, 0, 0, 255}, color.RGBA{0, 0, 255, 255}}
	frame := func(c uint8) *image.Paletted {
		p := image.NewPaletted(image.Rect(0, 0, w, h), pal)
		for i := range p.Pix {
			p.Pix[i] = c
		}
		return p
	}
	var b bytes.Buffer
	if err := gif.EncodeAll(&b, &gif.GIF{Image: []*image.Paletted{frame(0), frame(1)}, Delay: []int{10, 10}}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func readFixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The bombs below are real, small images whose headers are patched to claim gigapixels:
// decoding them for real would allocate gigabytes.

func pngBomb(t testing.TB) []byte {
	b := encodePNG(t, gradient(8, 8))
	// IHDR data starts at 16: width, height, then its CRC covers type+data at 12..29.
	binary.BigEndian.PutUint32(b[16:], 100_000)
	binary.BigEndian.PutUint32(b[20:], 100_000)
	binary.BigEndian.PutUint32(b[29:], crc32.ChecksumIEEE(b[12:29]))
	return b
}

func jpegBomb(t testing.TB) []byte {
	b := encodeJPEG(t, 8, 8)
	i := bytes.Index(b, []byte{0xFF, 0xC0}) // SOF0: length(2) precision(1) height(2) width(2)
	if i < 0 {
		t.Fatal("no SOF0 in the encoded JPEG")
	}
	binary.BigEndian.PutUint16(b[i+5:], 60_000)
	binary.BigEndian.PutUint16(b[i+7:], 60_000)
	return b
}

func gifBomb(t testing.TB) []byte {
	b := encodeGIF(t, 8, 8)
	binary.LittleEndian.PutUint16(b[6:], 65_535) // logical screen
	binary.LittleEndian.PutUint16(b[8:], 65_535)
	i := bytes.IndexByte(b[13+2*3:], 0x2C) + 13 + 2*3 // image descriptor after the 2-colour table
	binary.LittleEndian.PutUint16(b[i+5:], 65_535)
	binary.LittleEndian.PutUint16(b[i+7:], 65_535)
	return b
}

func webpBomb(t testing.TB) []byte {
	b := bytes.Clone(readFixture(t, "photo.webp"))
	i := bytes.Index(b, []byte{0x9d, 0x01, 0x2a}) // VP8 start code, then 14-bit width and height
	if i < 0 {
		t.Fatal("no VP8 start code in the fixture")
	}
	binary.LittleEndian.PutUint16(b[i+3:], 16_383)
	binary.LittleEndian.PutUint16(b[i+5:], 16_383)
	return b
}

func TestMakeThumbnail(t *testing.T) {
	for _, tc := range []struct {
		name     string
		data     []byte
		wantW    int
		wantH    int
		wantType string
	}{
		{"jpeg landscape", encodeJPEG(t, 1000, 500), 320, 160, "image/jpeg"},
		{"png portrait with alpha", encodePNG(t, image.NewNRGBA(image.Rect(0, 0, 300, 900))), 106, 320, "image/png"},
		{"png small is not enlarged", encodePNG(t, gradient(40, 30)), 40, 30, "image/jpeg"},
		{"gif first frame", encodeGIF(t, 640, 640), 320, 320, "image/jpeg"},
		{"webp", readFixture(t, "photo.webp"), -1, -1, "image/jpeg"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ct := mimetype.Detect(tc.data).String()
			thumb, err := MakeThumbnail(bytes.NewReader(tc.data), ct, 320, DefaultMaxImagePixels)
			if err != nil {
				t.Fatalf("thumbnail of %s: %v", ct, err)
			}
			if got := mimetype.Detect(thumb).String(); got != tc.wantType {
				t.Fatalf("thumbnail type %s, want %s", got, tc.wantType)
			}
			img, _, err := image.Decode(bytes.NewReader(thumb))
			if err != nil {
				t.Fatalf("decode thumbnail: %v", err)
			}
			w, h := img.Bounds().Dx(), img.Bounds().Dy()
			if tc.wantW >= 0 && (w != tc.wantW || h != tc.wantH) {
				t.Fatalf("thumbnail %dx%d, want %dx%d", w, h, tc.wantW, tc.wantH)
			}
			if max(w, h) > 320 {
				t.Fatalf("thumbnail %dx%d exceeds 320", w, h)
			}
			if tc.name == "gif first frame" {
				r, g, b, _ := img.At(w/2, h/2).RGBA()
				if r>>8 < 200 || b>>8 > 60 || g>>8 > 60 {
					t.Fatalf("centre pixel %d,%d,%d is not the first (red) frame", r>>8, g>>8, b>>8)
				}
			}
		})
	}
}

func TestMakeThumbnailRefusesBombs(t *testing.T) {
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"png", pngBomb(t)},
		{"jpeg", jpegBomb(t)},
		{"gif", gifBomb(t)},
		{"webp", webpBomb(t)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ct := mimetype.Detect(tc.data).String()
			if !Thumbnailable(ct) {
				t.Fatalf("the bomb sniffs as %s, which would skip the decoder under test", ct)
			}
			_, err := MakeThumbnail(bytes.NewReader(tc.data), ct, 320, DefaultMaxImagePixels)
			if !errors.Is(err, ErrImageTooLarge) {
				t.Fatalf("err = %v, want ErrImageTooLarge", err)
			}
		})
	}
}

func TestMakeThumbnailBrokenInput(t *testing.T) {
	good := encodePNG(t, gradient(100, 100))
	for _, tc := range []struct {
		name, ct string
		data     []byte
	}{
		{"truncated png", "image/png", good[:len(good)/2]},
		{"header only", "image/png", good[:33]},
		{"garbage claiming jpeg", "image/jpeg", []byte("\xff\xd8\xff garbage")},
		{"empty gif", "image/gif", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := MakeThumbnail(bytes.NewReader(tc.data), tc.ct, 320, DefaultMaxImagePixels); err == nil {
				t.Fatal("broken image gave a thumbnail")
			}
		})
	}
	if _, err := MakeThumbnail(bytes.NewReader(good), "image/svg+xml", 320, DefaultMaxImagePixels); !errors.Is(err, ErrNotThumbnailable) {
		t.Fatalf("svg: %v, want ErrNotThumbnailable", err)
	}
}
