package repo

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
)

// Manifests of encrypted repositories are sealed in segments of up to
// segmentSize bytes, so they stream with bounded memory. Each segment is
// stored as a uint32 (little endian) whose top bit marks the last segment
// and whose other bits are the sealed length, then the sealed bytes. The
// additional data of segment i is "manifest", i (uint64) and the last-flag,
// so segments cannot be reordered, dropped, or cut off at the end.
const (
	segmentSize = 1 << 20
	lastSegment = 1 << 31
)

func segmentAAD(i uint64, last bool) []byte {
	aad := binary.LittleEndian.AppendUint64([]byte("manifest"), i)
	if last {
		return append(aad, 1)
	}
	return append(aad, 0)
}

type segmentWriter struct {
	keys   *masterKeys
	w      io.Writer
	buf    []byte
	sealed []byte
	i      uint64
}

func (s *segmentWriter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		take := min(segmentSize-len(s.buf), len(p))
		s.buf = append(s.buf, p[:take]...)
		p = p[take:]
		if len(s.buf) == segmentSize {
			if err := s.emit(false); err != nil {
				return 0, err
			}
		}
	}
	return n, nil
}

func (s *segmentWriter) emit(last bool) error {
	s.sealed = s.keys.seal(s.sealed[:0], s.buf, segmentAAD(s.i, last))
	head := uint32(len(s.sealed))
	if last {
		head |= lastSegment
	}
	var h [4]byte
	binary.LittleEndian.PutUint32(h[:], head)
	if _, err := s.w.Write(h[:]); err != nil {
		return err
	}
	if _, err := s.w.Write(s.sealed); err != nil {
		return err
	}
	s.i++
	s.buf = s.buf[:0]
	return nil
}

// Close seals the last segment (it may be empty).
func (s *segmentWriter) Close() error { return s.emit(true) }

type segmentReader struct {
	keys  *masterKeys
	r     io.Reader
	plain []byte
	pos   int
	buf   []byte
	i     uint64
	done  bool
}

func (s *segmentReader) Read(p []byte) (int, error) {
	for s.pos == len(s.plain) {
		if s.done {
			return 0, io.EOF
		}
		var h [4]byte
		if _, err := io.ReadFull(s.r, h[:]); err != nil {
			return 0, fmt.Errorf("manifest is cut short: %w", io.ErrUnexpectedEOF)
		}
		head := binary.LittleEndian.Uint32(h[:])
		last := head&lastSegment != 0
		n := int(head &^ lastSegment)
		if n > segmentSize+sealOverhead {
			return 0, errors.New("manifest segment is too long: the manifest is damaged")
		}
		if cap(s.buf) < n {
			s.buf = make([]byte, n)
		}
		s.buf = s.buf[:n]
		if _, err := io.ReadFull(s.r, s.buf); err != nil {
			return 0, fmt.Errorf("manifest is cut short: %w", io.ErrUnexpectedEOF)
		}
		plain, err := s.keys.open(s.plain[:0], s.buf, segmentAAD(s.i, last))
		if err != nil {
			return 0, fmt.Errorf("manifest segment %d: %w", s.i, err)
		}
		s.plain, s.pos, s.done = plain, 0, last
		s.i++
		if last {
			var b [1]byte
			if n, _ := s.r.Read(b[:]); n > 0 {
				return 0, errors.New("manifest has bytes after its last segment: it is damaged")
			}
		}
	}
	n := copy(p, s.plain[s.pos:])
	s.pos += n
	return n, nil
}

// localCopy returns a local file holding the object: the object's own file
// in a directory repository, else a temporary download. cleanup removes
// what localCopy made.
func (r *Repo) localCopy(name string) (*os.File, func(), error) {
	if fst, ok := r.Store.(*FileStorage); ok {
		f, err := os.Open(fst.path(name))
		return f, func() {}, err
	}
	f, err := r.Store.TempFile(r.ctx, "")
	if err != nil {
		return nil, nil, err
	}
	cleanup := func() { os.Remove(f.Name()) }
	if err := r.Store.Download(r.ctx, name, f); err != nil {
		f.Close()
		cleanup()
		return nil, nil, err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		f.Close()
		cleanup()
		return nil, nil, err
	}
	return f, cleanup, nil
}
