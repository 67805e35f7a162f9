// tlogcheck verifies a replog verifiable log with Go's golang.org/x/mod/sumdb packages
// (an implementation replog shares no code with): the checkpoint with sumdb/note, the
// tiles by recomputing the whole tree from the leaf tiles with sumdb/tlog, and inclusion
// and consistency proofs with tlog.CheckRecord and tlog.CheckTree.
//
// It reads one JSON request (see tests/interop/test_tlog_go.py) from the file named by its
// argument, prints one line per check, and exits 1 at the first failure.
//
// The tiles are not read with tlog.TileHashReader: its ReadHashes can return hashes from
// tiles it never authenticated (see /work/shared/notes/tlog-interop.md), so every level-0
// tile is read, the tree is rebuilt from those leaf hashes and every other tile is compared
// with the rebuilt tree.
//
// Build: GO111MODULE=off GOPATH=/usr/share/gocode go build -o tlogcheck tlogcheck.go
package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

const tileHeight = 8

type inclusion struct {
	Index    int64    `json:"index"`
	LeafHash []byte   `json:"leaf_hash"`
	Proof    [][]byte `json:"proof"`
}

type consistency struct {
	OldSize int64    `json:"old_size"`
	OldRoot []byte   `json:"old_root"`
	Proof   [][]byte `json:"proof"`
}

type request struct {
	VerifierKey string        `json:"verifier_key"`
	SignerKey   string        `json:"signer_key"`
	Origin      string        `json:"origin"`
	Checkpoint  string        `json:"checkpoint"`
	TilesDir    string        `json:"tiles_dir"`
	Inclusion   []inclusion   `json:"inclusion"`
	Consistency []consistency `json:"consistency"`
}

func fail(format string, args ...any) {
	fmt.Printf("FAIL "+format+"\n", args...)
	os.Exit(1)
}

// openCheckpoint verifies the note's signature and parses the C2SP checkpoint body.
func openCheckpoint(req request) (int64, tlog.Hash) {
	verifier, err := note.NewVerifier(req.VerifierKey)
	if err != nil {
		fail("verifier key: %v", err)
	}
	n, err := note.Open([]byte(req.Checkpoint), note.VerifierList(verifier))
	if err != nil {
		fail("checkpoint note: %v", err)
	}
	lines := strings.Split(strings.TrimSuffix(n.Text, "\n"), "\n")
	if len(lines) < 3 || lines[0] != req.Origin {
		fail("checkpoint body: %q", n.Text)
	}
	size, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil || size < 0 || strconv.FormatInt(size, 10) != lines[1] {
		fail("checkpoint size %q", lines[1])
	}
	raw, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil || len(raw) != tlog.HashSize {
		fail("checkpoint root %q", lines[2])
	}
	var root tlog.Hash
	copy(root[:], raw)
	fmt.Printf("ok checkpoint signed by %s: size %d\n", verifier.Name(), size)
	if req.SignerKey != "" {
		signer, err := note.NewSigner(req.SignerKey)
		if err != nil {
			fail("signer key: %v", err)
		}
		again, err := note.Sign(&note.Note{Text: n.Text}, signer)
		if err != nil || string(again) != req.Checkpoint {
			fail("Go signing with replog's signer key gives another note (%v)", err)
		}
		fmt.Println("ok signer key: Go signs the same note")
	}
	return size, root
}

// c2spPath is the C2SP tlog-tiles path of a tile: Go's path without its height element.
func c2spPath(t tlog.Tile) string {
	return strings.Replace(t.Path(), fmt.Sprintf("tile/%d/", tileHeight), "tile/", 1)
}

func readTile(dir string, t tlog.Tile) []byte {
	data, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(c2spPath(t))))
	if err != nil {
		fail("tile %s: %v", c2spPath(t), err)
	}
	if len(data) != t.W*tlog.HashSize {
		fail("tile %s holds %d bytes, not %d", c2spPath(t), len(data), t.W*tlog.HashSize)
	}
	return data
}

// treeTiles is every tile of the tree of size leaves, each at its width in that tree.
// (tlog.NewTiles also lists every narrower partial tile a reader of a smaller tree may want.)
func treeTiles(size int64) []tlog.Tile {
	all := tlog.NewTiles(tileHeight, 0, size)
	var tiles []tlog.Tile
	for i, t := range all {
		next := i + 1
		if next < len(all) && all[next].L == t.L && all[next].N == t.N {
			continue // a wider tile of the same index follows
		}
		tiles = append(tiles, t)
	}
	return tiles
}

// rebuild recomputes every stored hash of the tree from the leaf hashes of the level-0 tiles.
func rebuild(dir string, size int64) tlog.HashReaderFunc {
	var stored []tlog.Hash
	reader := tlog.HashReaderFunc(func(indexes []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(indexes))
		for i, index := range indexes {
			if index >= int64(len(stored)) {
				return nil, fmt.Errorf("no stored hash %d", index)
			}
			out[i] = stored[index]
		}
		return out, nil
	})
	for _, t := range treeTiles(size) {
		if t.L != 0 {
			continue
		}
		data := readTile(dir, t)
		for i := 0; i < t.W; i++ {
			var leaf tlog.Hash
			copy(leaf[:], data[i*tlog.HashSize:])
			n := t.N<<tileHeight + int64(i)
			hashes, err := tlog.StoredHashesForRecordHash(n, leaf, reader)
			if err != nil {
				fail("leaf %d: %v", n, err)
			}
			stored = append(stored, hashes...)
		}
	}
	if int64(len(stored)) != tlog.StoredHashCount(size) {
		fail("the leaf tiles hold %d stored hashes, a tree of %d has %d",
			len(stored), size, tlog.StoredHashCount(size))
	}
	return reader
}

func checkTiles(dir string, size int64, root tlog.Hash) tlog.HashReader {
	reader := rebuild(dir, size)
	got, err := tlog.TreeHash(size, reader)
	if err != nil || got != root {
		fail("the tree rebuilt from the leaf tiles has root %v, the checkpoint says %v (%v)",
			got, root, err)
	}
	count := 0
	for _, t := range treeTiles(size) {
		want, err := tlog.ReadTileData(t, reader)
		if err != nil {
			fail("tile %s: %v", c2spPath(t), err)
		}
		if !bytes.Equal(readTile(dir, t), want) {
			fail("tile %s does not match the tree of the leaf tiles", c2spPath(t))
		}
		count++
	}
	fmt.Printf("ok tiles: %d tiles match the tree rebuilt from the leaf tiles\n", count)
	return reader
}

func hashes(raw [][]byte) []tlog.Hash {
	out := make([]tlog.Hash, len(raw))
	for i, h := range raw {
		if len(h) != tlog.HashSize {
			fail("a proof hash of %d bytes", len(h))
		}
		copy(out[i][:], h)
	}
	return out
}

func checkProofs(req request, size int64, root tlog.Hash, reader tlog.HashReader) {
	for _, p := range req.Inclusion {
		var leaf tlog.Hash
		copy(leaf[:], p.LeafHash)
		proof := tlog.RecordProof(hashes(p.Proof))
		if err := tlog.CheckRecord(proof, size, root, p.Index, leaf); err != nil {
			fail("inclusion of leaf %d in %d: %v", p.Index, size, err)
		}
		own, err := tlog.ProveRecord(size, p.Index, reader)
		if err != nil || fmt.Sprint(own) != fmt.Sprint(proof) {
			fail("Go's own proof of leaf %d differs from replog's (%v)", p.Index, err)
		}
	}
	fmt.Printf("ok inclusion: %d proofs\n", len(req.Inclusion))
	for _, p := range req.Consistency {
		var old tlog.Hash
		copy(old[:], p.OldRoot)
		proof := tlog.TreeProof(hashes(p.Proof))
		if err := tlog.CheckTree(proof, size, root, p.OldSize, old); err != nil {
			fail("consistency of %d with %d: %v", p.OldSize, size, err)
		}
		own, err := tlog.ProveTree(size, p.OldSize, reader)
		if err != nil || fmt.Sprint(own) != fmt.Sprint(proof) {
			fail("Go's own proof of %d -> %d differs from replog's (%v)", p.OldSize, size, err)
		}
	}
	fmt.Printf("ok consistency: %d proofs\n", len(req.Consistency))
}

func main() {
	if len(os.Args) != 2 {
		fail("usage: tlogcheck REQUEST.json")
	}
	raw, err := os.ReadFile(os.Args[1])
	if err != nil {
		fail("request: %v", err)
	}
	var req request
	if err := json.Unmarshal(raw, &req); err != nil {
		fail("request: %v", err)
	}
	size, root := openCheckpoint(req)
	reader := checkTiles(req.TilesDir, size, root)
	checkProofs(req, size, root, reader)
	fmt.Println("ok all")
}
