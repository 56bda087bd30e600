package files

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/gif"
	"image/jpeg"
	"image/png"
	"io"

	"golang.org/x/image/draw"
	"golang.org/x/image/webp"
)

// Thumbnail limits.
const (
	DefaultThumbnailSide = 320
	// DefaultMaxImagePixels refuses decoding anything larger than 40 megapixels: a
	// decoded image costs up to 4 bytes per pixel, so this caps one decode near 160 MB.
	DefaultMaxImagePixels = 40_000_000
)

var (
	// ErrNotThumbnailable is returned for content types without a decoder here.
	ErrNotThumbnailable = errors.New("no thumbnail for this content type")
	// ErrImageTooLarge is returned when an image header claims more pixels than allowed:
	// a decompression bomb is refused before a single pixel is allocated.
	ErrImageTooLarge = errors.New("image has too many pixels to thumbnail")
)

// decoders maps the sniffed content types that get thumbnails to their decoders. SVG is
// deliberately absent: it is a document with scripts, not an image we decode.
var decoders = map[string]struct {
	config func(io.Reader) (image.Config, error)
	decode func(io.Reader) (image.Image, error)
}{
	"image/jpeg": {jpeg.DecodeConfig, jpeg.Decode},
	"image/png":  {png.DecodeConfig, png.Decode},
	"image/gif":  {gif.DecodeConfig, gif.Decode}, // gif.Decode returns the first frame only
	"image/webp": {webp.DecodeConfig, webp.Decode},
}

// Thumbnailable reports whether MakeThumbnail handles the sniffed content type.
func Thumbnailable(contentType string) bool {
	_, ok := decoders[contentType]
	return ok
}

// MakeThumbnail decodes the image in r (of the sniffed contentType) and returns a
// thumbnail no larger than maxSide on its long side: JPEG for opaque images, PNG when
// transparency must survive. The header is read first and images claiming more than
// maxPixels are refused before decoding; a decoder panic on hostile input is an error.
func MakeThumbnail(r io.ReadSeeker, contentType string, maxSide int, maxPixels int64) (thumb []byte, err error) {
	dec, ok := decoders[contentType]
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrNotThumbnailable, contentType)
	}
	defer func() {
		if p := recover(); p != nil {
			thumb, err = nil, fmt.Errorf("thumbnail: decoder panicked: %v", p)
		}
	}()
	cfg, err := dec.config(r)
	if err != nil {
		return nil, fmt.Errorf("thumbnail: read image header: %w", err)
	}
	if cfg.Width <= 0 || cfg.Height <= 0 {
		return nil, fmt.Errorf("thumbnail: image claims %dx%d pixels", cfg.Width, cfg.Height)
	}
	if int64(cfg.Width)*int64(cfg.Height) > maxPixels {
		return nil, fmt.Errorf("%w: %dx%d > %d", ErrImageTooLarge, cfg.Width, cfg.Height, maxPixels)
	}
	if _, err := r.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("thumbnail: rewind: %w", err)
	}
	src, err := dec.decode(r)
	if err != nil {
		return nil, fmt.Errorf("thumbnail: decode: %w", err)
	}
	w, h := fit(src.Bounds().Dx(), src.Bounds().Dy(), maxSide)
	dst := image.NewNRGBA(image.Rect(0, 0, w, h))
	draw.CatmullRom.Scale(dst, dst.Bounds(), src, src.Bounds(), draw.Src, nil)

	var buf bytes.Buffer
	if dst.Opaque() {
		err = jpeg.Encode(&buf, dst, &jpeg.Options{Quality: 82})
	} else {
		err = png.Encode(&buf, dst)
	}
	if err != nil {
		return nil, fmt.Errorf("thumbnail: encode: %w", err)
	}
	return buf.Bytes(), nil
}

// fit scales w×h down to at most side on the long edge, keeping the aspect ratio and
// never scaling up.
func fit(w, h, side int) (int, int) {
	if w <= side && h <= side {
		return w, h
	}
	if w >= h {
		return side, max(1, h*side/w)
	}
	return max(1, w*side/h), side
}
