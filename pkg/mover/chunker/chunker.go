// Package chunker splits a byte stream into content-defined chunks with
// FastCDC (gear rolling hash, normalized chunking). Boundaries depend on the
// bytes near them only, so an insert in a large file changes the chunks around
// the insert and leaves the others, and their hashes, as they were.
package chunker

import (
	"errors"
	"io"
	"math/bits"
)

// Params are the chunk size limits. They are part of a repository's config:
// changing them changes every boundary (and so loses deduplication, not data).
type Params struct {
	Min, Avg, Max int
}

// DefaultParams suit volumes of mixed small and large files: 1 MiB on average.
var DefaultParams = Params{Min: 256 << 10, Avg: 1 << 20, Max: 4 << 20}

// Validate checks the limits are usable.
func (p Params) Validate() error {
	if p.Min <= 64 || p.Avg <= p.Min || p.Max <= p.Avg || bits.OnesCount(uint(p.Avg)) != 1 {
		return errors.New("chunker: need 64 < min < avg < max with avg a power of two")
	}
	return nil
}

// gear is a fixed table of pseudo-random 64-bit values (splitmix64 from a
// constant seed); fixed, because boundaries must be the same on every run.
var gear = func() (t [256]uint64) {
	x := uint64(0x6a09e667f3bcc909)
	for i := range t {
		x += 0x9e3779b97f4a7c15
		z := x
		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
		z = (z ^ (z >> 27)) * 0x94d049bb133111eb
		t[i] = z ^ (z >> 31)
	}
	return t
}()

// Chunker reads chunks from r. Each returned chunk is valid until the next call.
type Chunker struct {
	r          io.Reader
	p          Params
	maskS      uint64 // stricter mask before the average size
	maskL      uint64 // looser mask after it
	buf        []byte
	start, end int
	eof        bool
}

// BufferSize is the size of the buffer New needs: the largest chunk plus
// room to read ahead.
func BufferSize(p Params) int { return p.Max + p.Max/2 }

// New returns a chunker over r. buf, if large enough (BufferSize), is reused.
func New(r io.Reader, p Params, buf []byte) *Chunker {
	if cap(buf) < BufferSize(p) {
		buf = make([]byte, BufferSize(p))
	}
	b := bits.TrailingZeros(uint(p.Avg))
	return &Chunker{r: r, p: p, buf: buf[:cap(buf)], maskS: spreadMask(b + 2), maskL: spreadMask(b - 2)}
}

// spreadMask returns a mask with n one-bits spread over the high bits, as
// FastCDC recommends (the low bits of a gear hash carry little history).
func spreadMask(n int) uint64 {
	var m uint64
	for i := 0; i < n; i++ {
		m |= 1 << (63 - uint(i)*64/uint(n))
	}
	return m
}

// Next returns the next chunk, or io.EOF after the last one.
func (c *Chunker) Next() ([]byte, error) {
	if err := c.fill(); err != nil {
		return nil, err
	}
	avail := c.end - c.start
	if avail == 0 {
		return nil, io.EOF
	}
	n := c.cut(c.buf[c.start:c.end])
	chunk := c.buf[c.start : c.start+n]
	c.start += n
	return chunk, nil
}

// fill makes at least Max bytes available, unless the input ends first.
func (c *Chunker) fill() error {
	if c.end-c.start >= c.p.Max || c.eof {
		return nil
	}
	copy(c.buf, c.buf[c.start:c.end])
	c.end -= c.start
	c.start = 0
	for c.end < c.p.Max && !c.eof {
		n, err := c.r.Read(c.buf[c.end:])
		c.end += n
		if err == io.EOF {
			c.eof = true
		} else if err != nil {
			return err
		}
	}
	return nil
}

// cut returns the length of the chunk at the start of data.
func (c *Chunker) cut(data []byte) int {
	n := len(data)
	if n <= c.p.Min {
		return n
	}
	if n > c.p.Max {
		n = c.p.Max
	}
	normal := c.p.Avg
	if normal > n {
		normal = n
	}
	var h uint64
	i := c.p.Min
	for ; i < normal; i++ {
		h = (h << 1) + gear[data[i]]
		if h&c.maskS == 0 {
			return i + 1
		}
	}
	for ; i < n; i++ {
		h = (h << 1) + gear[data[i]]
		if h&c.maskL == 0 {
			return i + 1
		}
	}
	return n
}

// Splitter cuts a stream into the same chunks as Chunker, but reads each
// chunk straight into a buffer the caller passes, a step at a time: it keeps
// no window of its own, only the bytes it read past the last cut (at most
// one step), and moves no more than those between chunks.
type Splitter struct {
	r     io.Reader
	p     Params
	maskS uint64
	maskL uint64
	step  int
	carry []byte
	eof   bool
}

// NewSplitter returns a splitter over r.
func NewSplitter(r io.Reader, p Params) *Splitter {
	b := bits.TrailingZeros(uint(p.Avg))
	step := min(p.Min, 256<<10)
	return &Splitter{r: r, p: p, step: step, maskS: spreadMask(b + 2), maskL: spreadMask(b - 2), carry: make([]byte, 0, step)}
}

// Next reads the next chunk into buf, whose capacity must be at least
// Params.Max, and returns it (a prefix of buf), or io.EOF after the last one.
func (s *Splitter) Next(buf []byte) ([]byte, error) {
	if cap(buf) < s.p.Max {
		return nil, errors.New("chunker: Splitter.Next needs a buffer of Params.Max bytes")
	}
	b := append(buf[:0], s.carry...)
	s.carry = s.carry[:0]
	var h uint64
	i := s.p.Min
	cut := -1
	for cut < 0 {
		// Scan what is there; the masks and limits are Chunker.cut's.
		limit := min(len(b), s.p.Max)
		for normal := min(limit, s.p.Avg); i < normal; i++ {
			h = (h << 1) + gear[b[i]]
			if h&s.maskS == 0 {
				cut = i + 1
				break
			}
		}
		for ; cut < 0 && i < limit; i++ {
			h = (h << 1) + gear[b[i]]
			if h&s.maskL == 0 {
				cut = i + 1
			}
		}
		switch {
		case cut >= 0:
		case len(b) >= s.p.Max:
			cut = s.p.Max
		case s.eof:
			cut = len(b)
		default:
			want := min(s.step, s.p.Max-len(b))
			n, err := s.r.Read(b[len(b) : len(b)+want])
			b = b[:len(b)+n]
			if err == io.EOF {
				s.eof = true
			} else if err != nil {
				return nil, err
			}
		}
	}
	if cut == 0 {
		return nil, io.EOF
	}
	s.carry = append(s.carry, b[cut:]...)
	return b[:cut], nil
}
