// Package cache stores a teacher model's next-token predictions so that
// distillation can run without the teacher.
//
// AFM distills its on-device model from the teacher's top-1 prediction
// per token ("Apple Intelligence Foundation Language Models", 2024, §3.2;
// see package distill), and names the storage of precomputed teacher
// predictions as the cost of doing so offline. A top-1 id is 4 bytes a
// token; AFM's 6.3T pre-training tokens would still be 25 TB, so a corpus
// is written as many shard files under one manifest.
//
// # Storage per token
//
// Each token stores the teacher's top K ids, as uint32 or packed to
// ⌈log2 V⌉ bits, and optionally their log-probabilities as bfloat16 or
// IEEE float16 (tensor.ToBF16, tensor.ToF16). For a 49,152-token
// vocabulary (Format.BytesPerToken; block checksums add 4 bytes per
// block of 65,536 tokens by default):
//
//	K    ids     log-probs   bytes/token   vs float32 logits (196,608 B)
//	1    uint32  none          4           1 / 49,152
//	1    16 bit  none          2           1 / 98,304
//	8    uint32  bf16         48           1 / 4,096
//	8    16 bit  bf16         32           1 / 6,144
//	32   uint32  f16         192           1 / 1,024
//	32   16 bit  f16         128           1 / 1,536
//
// Full bfloat16 logits would cost 98,304 bytes a token.
//
// # File format
//
// A 64-byte header (magic "PTTCACHE", version, vocabulary size, K, tokens
// per block, token count, log-prob precision, id width, the file's shard
// index, the first 20 bytes of the SHA-256 of all its blocks, and the
// header's own CRC-32C) is followed by blocks of BlockTokens tokens (the
// last may be short), each ending with the CRC-32C (Castagnoli) of its
// contents. All integers are little-endian. The header fixes every block's
// offset and the file's exact size, so a reader can seek to any block, and
// a truncated or overlong file is detected before any data is trusted.
//
// Writers write to a temporary file in the target directory and, on
// Close, sync it, rename it into place and sync the directory
// (internal/atomicfile), so a crash never leaves a partial file under the
// final name. The Reader memory-maps the file (golang.org/x/exp/mmap) and
// copies out one block at a time, verifying its checksum first: the file
// is never loaded whole. Every corruption — bad magic or header checksum,
// truncation, a flipped bit in a block, an id outside the vocabulary — is
// an error naming the file and the block that satisfies
// errors.Is(err, ErrCorrupt); none is a panic (the reader is fuzzed, with
// a committed seed corpus). Blocks replaced by other blocks with valid
// checksums are caught by the content digest: Next hashes the blocks as it
// returns them and fails at the file's last block, before returning it
// (the blocks before it have been delivered); Reader.Verify reads the
// whole file first, for a caller that must not use a single token of a
// forged file.
//
// A file truncated by another process while it is mapped would make the
// copy fault (SIGBUS) and kill the process; the reader turns that fault
// into an ErrCorrupt error for the block being read
// (runtime/debug.SetPanicOnFault around the copy).
//
// # Corpora
//
// ShardWriter splits a stream into shards of a fixed token count and
// writes manifest.json listing them with their index, token count, content
// SHA-256 and header checksum; each shard's header records its index and
// digest too. OpenCorpus checks every shard against the manifest before
// reading anything — existence, format, length, exact file size, index
// and digest — so a missing, truncated, extended, swapped or substituted
// shard is an error naming it before a single token is delivered.
// Corpus.Next checks each shard's content digest as it streams, at the
// shard's last block (an error naming the shard, that block withheld);
// Corpus.Verify reads every shard whole and compares its content with the
// manifest's digest before anything is used: the full check, for when a
// cache arrives from elsewhere.
//
// # Filling a cache
//
// Precompute runs any Teacher — a function from a batch of tokens to
// logits — over a TokenSource, takes the top K of each row's log-softmax,
// writes them to a Writer or ShardWriter, and reports progress through a
// callback; it honours context cancellation between batches.
package cache
