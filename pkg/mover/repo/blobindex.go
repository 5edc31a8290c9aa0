package repo

import (
	"bytes"
	"encoding/binary"
	"io"
	"slices"
	"sort"
)

// blobIndex maps blob IDs to their places. A place names its pack by a
// number into a table of pack IDs, so an entry is the ID's 32 bytes and 24
// more, where a Location alone takes 56: the index held in memory is what
// the memory of a backup of many small files, and of a prune, grows with.
type blobIndex struct {
	m       map[ID]place
	packs   []ID
	packNum map[ID]uint32
}

// place is a Location with its pack as a number into blobIndex.packs.
type place struct {
	offset     int64
	pack       uint32
	length     uint32
	rawLength  uint32
	compressed bool
}

func newBlobIndex() *blobIndex {
	return &blobIndex{m: map[ID]place{}, packNum: map[ID]uint32{}}
}

func (x *blobIndex) number(pack ID) uint32 {
	n, ok := x.packNum[pack]
	if !ok {
		n = uint32(len(x.packs))
		x.packs = append(x.packs, pack)
		x.packNum[pack] = n
	}
	return n
}

func (x *blobIndex) put(id ID, l Location) {
	x.m[id] = place{offset: l.Offset, pack: x.number(l.Pack), length: l.Length, rawLength: l.RawLength, compressed: l.Compressed}
}

func (x *blobIndex) location(p place) Location {
	return Location{Pack: x.packs[p.pack], Offset: p.offset, Length: p.length, RawLength: p.rawLength, Compressed: p.compressed}
}

func (x *blobIndex) get(id ID) (Location, bool) {
	p, ok := x.m[id]
	if !ok {
		return Location{}, false
	}
	return x.location(p), true
}

func (x *blobIndex) has(id ID) bool {
	_, ok := x.m[id]
	return ok
}

func (x *blobIndex) len() int { return len(x.m) }

// all yields every blob and its location, in no particular order.
func (x *blobIndex) all(yield func(ID, Location) bool) {
	for id, p := range x.m {
		if !yield(id, x.location(p)) {
			return
		}
	}
}

// encode is the index file's plaintext (see encodeIndex).
func (x *blobIndex) encode() []byte { return x.encodeWhere(nil) }

// encodeWhere is the plaintext of an index file of the blobs keep accepts
// (all with keep nil).
func (x *blobIndex) encodeWhere(keep func(ID) bool) []byte {
	var b bytes.Buffer
	x.writeTo(&b, keep) // a bytes.Buffer takes every write
	return b.Bytes()
}

// writeTo writes the plaintext of an index file of the blobs keep accepts
// (all with keep nil) to w, a pack at a time. It groups the blobs by pack
// through one array of IDs (32 bytes a blob) rather than a table of
// Locations.
func (x *blobIndex) writeTo(w io.Writer, keep func(ID) bool) error {
	start := make([]int, len(x.packs)+1)
	kept := 0
	for id, p := range x.m {
		if keep == nil || keep(id) {
			start[p.pack+1]++
			kept++
		}
	}
	for i := range x.packs {
		start[i+1] += start[i]
	}
	ids := make([]ID, kept)
	next := slices.Clone(start[:len(x.packs)])
	for id, p := range x.m {
		if keep == nil || keep(id) {
			ids[next[p.pack]] = id
			next[p.pack]++
		}
	}
	var order []uint32
	for i := range x.packs {
		if start[i+1] > start[i] {
			order = append(order, uint32(i))
		}
	}
	sort.Slice(order, func(i, j int) bool { return bytes.Compare(x.packs[order[i]][:], x.packs[order[j]][:]) < 0 })
	rec := append([]byte(nil), indexMagic...)
	rec = binary.AppendUvarint(rec, uint64(len(order)))
	if _, err := w.Write(rec); err != nil {
		return err
	}
	var blobs []indexBlob
	for _, n := range order {
		blobs = blobs[:0]
		for _, id := range ids[start[n]:start[n+1]] {
			p := x.m[id]
			blobs = append(blobs, indexBlob{ID: id, Offset: p.offset, Length: p.length, RawLength: p.rawLength, Compressed: p.compressed})
		}
		sort.Slice(blobs, func(i, j int) bool { return blobs[i].Offset < blobs[j].Offset })
		pack := x.packs[n]
		rec = appendBlobTable(append(rec[:0], pack[:]...), blobs)
		if _, err := w.Write(rec); err != nil {
			return err
		}
	}
	return nil
}
