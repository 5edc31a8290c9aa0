package repo

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// The repository's metadata (pack tables, index files and manifest entries)
// is binary: varints and raw 32-byte IDs. It decodes several times faster
// than JSON, which is what a no-change backup spends its time on, and it
// keeps file names byte for byte (JSON cannot hold names that are not UTF-8).
// FORMAT.md describes every layout.

var (
	indexMagic = []byte("BKI2")
	packMagic  = []byte("BKP2")
)

const (
	maxBlobLength = 1 << 30
	// packFooterLen is the table length (uint32, little endian) plus the magic.
	packFooterLen = 8
)

// errShort is returned for any truncated record.
var errShort = errors.New("truncated record")

type recDecoder struct {
	b   []byte
	err error
}

func (d *recDecoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errShort
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *recDecoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err = errShort
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *recDecoder) bytes(n uint64) []byte {
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.err = errShort
		return nil
	}
	out := d.b[:n]
	d.b = d.b[n:]
	return out
}

func (d *recDecoder) id() (id ID) {
	copy(id[:], d.bytes(32))
	return id
}

func (d *recDecoder) byte() byte {
	b := d.bytes(1)
	if len(b) == 0 {
		return 0
	}
	return b[0]
}

// appendBlobTable encodes a pack's blobs (in offset order): count, then per
// blob its ID, offset, stored length, plaintext length and flags (bit 0:
// zstd-compressed). The same table ends a pack file and makes up an index.
func appendBlobTable(dst []byte, blobs []indexBlob) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(blobs)))
	for _, b := range blobs {
		dst = append(dst, b.ID[:]...)
		dst = binary.AppendUvarint(dst, uint64(b.Offset))
		dst = binary.AppendUvarint(dst, uint64(b.Length))
		dst = binary.AppendUvarint(dst, uint64(b.RawLength))
		var flags byte
		if b.Compressed {
			flags = 1
		}
		dst = append(dst, flags)
	}
	return dst
}

func (d *recDecoder) blobTable() []indexBlob {
	n := d.uvarint()
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b))/36 { // each blob takes at least 36 bytes
		d.err = errShort
		return nil
	}
	blobs := make([]indexBlob, 0, n)
	for i := uint64(0); i < n && d.err == nil; i++ {
		b := indexBlob{ID: d.id()}
		off, length, raw := d.uvarint(), d.uvarint(), d.uvarint()
		flags := d.byte()
		if d.err != nil {
			break
		}
		if off > 1<<62 || length == 0 || length > maxBlobLength || raw > maxBlobLength || flags > 1 {
			d.err = fmt.Errorf("blob %s has impossible bounds or flags", b.ID.Short())
			break
		}
		b.Offset, b.Length, b.RawLength, b.Compressed = int64(off), uint32(length), uint32(raw), flags == 1
		blobs = append(blobs, b)
	}
	return blobs
}

// DecodeIndex parses the plaintext (decompressed) form of an index file.
func DecodeIndex(data []byte) (map[ID]Location, error) {
	out := make(map[ID]Location)
	err := decodeIndex(data, func(id ID, l Location) { out[id] = l })
	if err != nil {
		return nil, err
	}
	return out, nil
}

// decodeIndex calls add for each blob of an index file's plaintext, and
// fails on a malformed one (after calling add for the blobs before the
// damage).
func decodeIndex(data []byte, add func(ID, Location)) error {
	if !bytes.HasPrefix(data, indexMagic) {
		return errors.New("decoding index: not an index file of this format")
	}
	d := recDecoder{b: data[len(indexMagic):]}
	n := d.uvarint()
	for i := uint64(0); i < n && d.err == nil; i++ {
		pack := d.id()
		for _, b := range d.blobTable() {
			add(b.ID, Location{Pack: pack, Offset: b.Offset, Length: b.Length, RawLength: b.RawLength, Compressed: b.Compressed})
		}
	}
	if d.err == nil && len(d.b) != 0 {
		d.err = errors.New("trailing bytes")
	}
	if d.err != nil {
		return fmt.Errorf("decoding index: %w", d.err)
	}
	return nil
}

// decodeIndexStream is decodeIndex reading the plaintext from r, so that
// it is never whole in memory: the same checks, the same order of add calls.
func decodeIndexStream(r io.Reader, add func(ID, Location)) error {
	br := bufio.NewReaderSize(r, 64<<10)
	err := func() error {
		magic := make([]byte, len(indexMagic))
		if _, err := io.ReadFull(br, magic); err != nil || !bytes.Equal(magic, indexMagic) {
			return errors.New("not an index file of this format")
		}
		var id ID
		readID := func() error {
			_, err := io.ReadFull(br, id[:])
			return err
		}
		packs, err := binary.ReadUvarint(br)
		if err != nil {
			return err
		}
		for i := uint64(0); i < packs; i++ {
			if err := readID(); err != nil {
				return err
			}
			pack := id
			n, err := binary.ReadUvarint(br)
			if err != nil {
				return err
			}
			for j := uint64(0); j < n; j++ {
				if err := readID(); err != nil {
					return err
				}
				var v [3]uint64
				for k := range v {
					if v[k], err = binary.ReadUvarint(br); err != nil {
						return err
					}
				}
				flags, err := br.ReadByte()
				if err != nil {
					return err
				}
				off, length, raw := v[0], v[1], v[2]
				if off > 1<<62 || length == 0 || length > maxBlobLength || raw > maxBlobLength || flags > 1 {
					return fmt.Errorf("blob %s has impossible bounds or flags", id.Short())
				}
				add(id, Location{Pack: pack, Offset: int64(off), Length: uint32(length), RawLength: uint32(raw), Compressed: flags == 1})
			}
		}
		if _, err := br.ReadByte(); err != io.EOF {
			if err == nil {
				err = errors.New("trailing bytes")
			}
			return err
		}
		return nil
	}()
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		err = errShort
	}
	if err != nil {
		return fmt.Errorf("decoding index: %w", err)
	}
	return nil
}

func encodeIndex(locs map[ID]Location) []byte {
	x := newBlobIndex()
	for id, l := range locs {
		x.put(id, l)
	}
	return x.encode()
}

// Entry types as stored.
var typeCodes = map[EntryType]byte{TypeDir: 1, TypeFile: 2, TypeSymlink: 3}
var codeTypes = [...]EntryType{1: TypeDir, 2: TypeFile, 3: TypeSymlink}

// AppendEntry encodes e as one manifest record body (without its length
// prefix) and does not validate it; ManifestWriter adds the prefix.
func AppendEntry(dst []byte, e *Entry) []byte {
	dst = append(dst, typeCodes[e.Type])
	dst = binary.AppendUvarint(dst, uint64(len(e.Path)))
	dst = append(dst, e.Path...)
	dst = binary.AppendUvarint(dst, uint64(e.Mode))
	dst = binary.AppendUvarint(dst, uint64(e.UID))
	dst = binary.AppendUvarint(dst, uint64(e.GID))
	dst = binary.AppendVarint(dst, e.MTime)
	dst = binary.AppendVarint(dst, e.Size)
	dst = binary.AppendUvarint(dst, uint64(len(e.Target)))
	dst = append(dst, e.Target...)
	dst = binary.AppendUvarint(dst, e.LinkGroup)
	dst = binary.AppendUvarint(dst, e.Inode)
	dst = binary.AppendUvarint(dst, uint64(len(e.Chunks)))
	for i := range e.Chunks {
		dst = append(dst, e.Chunks[i][:]...)
	}
	// Extended attributes, only when there are some: most entries have none.
	if len(e.Xattrs) > 0 {
		dst = binary.AppendUvarint(dst, uint64(len(e.Xattrs)))
		for _, x := range e.Xattrs {
			dst = binary.AppendUvarint(dst, uint64(len(x.Name)))
			dst = append(dst, x.Name...)
			dst = binary.AppendUvarint(dst, uint64(len(x.Value)))
			dst = append(dst, x.Value...)
		}
	}
	return dst
}

// DecodeEntry parses and validates one manifest record body.
func DecodeEntry(rec []byte) (Entry, error) {
	var e Entry
	d := recDecoder{b: rec}
	code := d.byte()
	e.Path = string(d.bytes(d.uvarint()))
	mode, uid, gid := d.uvarint(), d.uvarint(), d.uvarint()
	e.MTime = d.varint()
	e.Size = d.varint()
	e.Target = string(d.bytes(d.uvarint()))
	e.LinkGroup = d.uvarint()
	e.Inode = d.uvarint()
	n := d.uvarint()
	if d.err == nil && n > uint64(len(d.b))/32 {
		d.err = errShort
	}
	if d.err == nil && n > 0 {
		e.Chunks = make([]ID, n)
		for i := range e.Chunks {
			e.Chunks[i] = d.id()
		}
	}
	if d.err == nil && len(d.b) != 0 {
		n := d.uvarint()
		if d.err == nil && (n == 0 || n > uint64(len(d.b))/3) { // each takes at least 3 bytes
			d.err = errors.New("invalid extended attribute count")
		}
		for i := uint64(0); i < n && d.err == nil; i++ {
			name := string(d.bytes(d.uvarint()))
			value := d.bytes(d.uvarint())
			e.Xattrs = append(e.Xattrs, Xattr{Name: name, Value: append([]byte{}, value...)})
		}
	}
	if d.err == nil && len(d.b) != 0 {
		d.err = errors.New("trailing bytes")
	}
	if d.err != nil {
		return e, fmt.Errorf("decoding manifest entry: %w", d.err)
	}
	if int(code) >= len(codeTypes) || codeTypes[code] == "" {
		return e, fmt.Errorf("manifest entry %q has unknown type %d", e.Path, code)
	}
	e.Type = codeTypes[code]
	if uid > 1<<32-1 || gid > 1<<32-1 {
		return e, fmt.Errorf("manifest entry %q has an owner beyond 32 bits", e.Path)
	}
	if mode&^uint64(0o7777) != 0 {
		return e, fmt.Errorf("manifest entry %q has mode bits outside 07777", e.Path)
	}
	e.Mode, e.UID, e.GID = uint32(mode), uint32(uid), uint32(gid)
	return e, validateEntry(&e)
}

// EncodeManifest returns the plaintext of a manifest holding entries as
// given, without validating them (ManifestWriter is the checked way; tests
// use this to build hostile manifests).
func EncodeManifest(entries []Entry) []byte {
	out := append([]byte(nil), manifestMagic...)
	var rec []byte
	for i := range entries {
		rec = AppendEntry(rec[:0], &entries[i])
		out = binary.AppendUvarint(out, uint64(len(rec)))
		out = append(out, rec...)
	}
	return out
}

// CheckPack reads a pack whole and checks it: its trailing blob table
// must hash to the pack's name, and every blob in it must decode to its ID.
func (r *Repo) CheckPack(id ID) error {
	data, err := r.Store.Get(r.ctx, packName(id), 0, -1, nil)
	if err != nil {
		return err
	}
	if len(data) < packFooterLen || !bytes.Equal(data[len(data)-4:], packMagic) {
		return errors.New("the pack has no blob table at its end")
	}
	tl := int64(binary.LittleEndian.Uint32(data[len(data)-8:]))
	end := int64(len(data)) - packFooterLen - tl
	if end < 0 {
		return errors.New("the pack's blob table length is beyond the file")
	}
	table := data[end : end+tl]
	if Hash(table) != id {
		return errors.New("the pack's blob table does not match the pack's name (SHA-256)")
	}
	if table, err = r.open(table, aadTable); err != nil {
		return fmt.Errorf("the pack's blob table: %w", err)
	}
	d := recDecoder{b: table}
	blobs := d.blobTable()
	if d.err == nil && len(d.b) != 0 {
		d.err = errors.New("trailing bytes")
	}
	if d.err != nil {
		return fmt.Errorf("the pack's blob table is damaged: %w", d.err)
	}
	var buf []byte
	for _, b := range blobs {
		if b.Offset+int64(b.Length) > end {
			return fmt.Errorf("blob %s lies beyond the pack's data", b.ID.Short())
		}
		loc := Location{Pack: id, Offset: b.Offset, Length: b.Length, RawLength: b.RawLength, Compressed: b.Compressed}
		if buf, err = r.decodeBlob(b.ID, loc, data[b.Offset:b.Offset+int64(b.Length)], buf); err != nil {
			return fmt.Errorf("blob %s is damaged: %w", b.ID.Short(), err)
		}
	}
	return nil
}

// readPackTable reads a pack's blob table from its end and checks it
// against the pack's name.
func (r *Repo) readPackTable(id ID) ([]indexBlob, error) {
	name := packName(id)
	info, err := r.Store.Stat(r.ctx, name)
	if err != nil {
		return nil, err
	}
	if info.Size < packFooterLen {
		return nil, errors.New("the pack has no blob table at its end")
	}
	footer, err := r.Store.Get(r.ctx, name, info.Size-packFooterLen, packFooterLen, nil)
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(footer[4:], packMagic) {
		return nil, errors.New("the pack has no blob table at its end")
	}
	tl := int64(binary.LittleEndian.Uint32(footer))
	if tl > info.Size-packFooterLen {
		return nil, errors.New("the pack's blob table length is beyond the pack")
	}
	table, err := r.Store.Get(r.ctx, name, info.Size-packFooterLen-tl, tl, nil)
	if err != nil {
		return nil, err
	}
	if Hash(table) != id {
		return nil, errors.New("the pack's blob table does not match the pack's name (SHA-256)")
	}
	if table, err = r.open(table, aadTable); err != nil {
		return nil, fmt.Errorf("the pack's blob table: %w", err)
	}
	d := recDecoder{b: table}
	blobs := d.blobTable()
	if d.err == nil && len(d.b) != 0 {
		d.err = errors.New("trailing bytes")
	}
	if d.err != nil {
		return nil, fmt.Errorf("the pack's blob table is damaged: %w", d.err)
	}
	for _, b := range blobs {
		if b.Offset+int64(b.Length) > info.Size-packFooterLen-tl {
			return nil, fmt.Errorf("blob %s lies beyond the pack's data", b.ID.Short())
		}
	}
	return blobs, nil
}
