package hf

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Tokenizer is the tokenizer of a Hugging Face model directory, read from
// its tokenizer.json and tokenizer_config.json: a BPE model (byte-level as
// GPT-2, Llama 3, Qwen2 and SmolLM use, or SentencePiece-style with byte
// fallback as Llama 2, Mistral and TinyLlama use) with its added tokens,
// normalizer, pre-tokenizer, post-processor and decoder, and the chat
// template. It is safe for concurrent use.
type Tokenizer struct {
	model     *bpe
	tokens    []string         // by id; "" where no token has the id
	addedIDs  map[string]int32 // added tokens, which win over the model's vocabulary
	special   []bool           // by id
	added     []addedToken
	raw       *addedMatcher // added tokens matched in the text as given
	norm      *addedMatcher // added tokens matched in normalized text
	normalize normalizer
	pre       []preTokenizer
	decode    decoder
	prefix    []int32 // ids add_special_tokens=True puts before the text
	suffix    []int32 // and after it

	bos, eos, pad, unk int32 // -1 when not configured
	specialNames       map[string]string
	cleanUp            bool
	chatTemplate       string
	chat               chatState
}

// addedToken is an entry of tokenizer.json's added_tokens.
type addedToken struct {
	ID         int32  `json:"id"`
	Content    string `json:"content"`
	SingleWord bool   `json:"single_word"`
	LStrip     bool   `json:"lstrip"`
	RStrip     bool   `json:"rstrip"`
	Normalized bool   `json:"normalized"`
	Special    bool   `json:"special"`
}

type tokenizerFile struct {
	AddedTokens   []addedToken    `json:"added_tokens"`
	Normalizer    json.RawMessage `json:"normalizer"`
	PreTokenizer  json.RawMessage `json:"pre_tokenizer"`
	PostProcessor json.RawMessage `json:"post_processor"`
	Decoder       json.RawMessage `json:"decoder"`
	Model         json.RawMessage `json:"model"`
}

type bpeFile struct {
	Type                    string          `json:"type"`
	Dropout                 *float64        `json:"dropout"`
	UnkToken                *string         `json:"unk_token"`
	ContinuingSubwordPrefix *string         `json:"continuing_subword_prefix"`
	EndOfWordSuffix         *string         `json:"end_of_word_suffix"`
	FuseUnk                 bool            `json:"fuse_unk"`
	ByteFallback            bool            `json:"byte_fallback"`
	IgnoreMerges            bool            `json:"ignore_merges"`
	Vocab                   json.RawMessage `json:"vocab"`
	Merges                  json.RawMessage `json:"merges"`
}

// metaSpace is SentencePiece's stand-in for a space.
const metaSpace = "\u2581"

// LoadTokenizer reads the tokenizer of the model directory dir:
// tokenizer.json (required), tokenizer_config.json (special-token names,
// add_bos_token/add_eos_token, chat_template) and chat_template.jinja when
// present (which, as in transformers, takes precedence over the config's
// template). A component it does not implement — a WordPiece, Unigram or
// WordLevel model, an unknown normalizer, pre-tokenizer, post-processor or
// decoder, BPE dropout — is refused with an error naming it, never
// approximated.
func LoadTokenizer(dir string) (*Tokenizer, error) {
	tj, err := os.ReadFile(filepath.Join(dir, "tokenizer.json"))
	if err != nil {
		return nil, fmt.Errorf("hf: LoadTokenizer: %w", err)
	}
	cj, err := os.ReadFile(filepath.Join(dir, "tokenizer_config.json"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("hf: LoadTokenizer: %w", err)
	}
	t, err := parseTokenizer(tj, cj)
	if err != nil {
		return nil, fmt.Errorf("hf: LoadTokenizer: %s: %w", dir, err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "chat_template.jinja")); err == nil {
		t.chatTemplate = string(b)
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("hf: LoadTokenizer: %w", err)
	}
	return t, nil
}

func parseTokenizer(tj, cj []byte) (*Tokenizer, error) {
	var f tokenizerFile
	if err := json.Unmarshal(tj, &f); err != nil {
		return nil, fmt.Errorf("tokenizer.json: %w", err)
	}
	t := &Tokenizer{bos: -1, eos: -1, pad: -1, unk: -1}
	var err error
	if t.model, err = parseBPE(f.Model); err != nil {
		return nil, fmt.Errorf("tokenizer.json: model: %w", err)
	}
	if t.normalize, err = parseNormalizer(f.Normalizer); err != nil {
		return nil, fmt.Errorf("tokenizer.json: normalizer: %w", err)
	}
	if t.pre, t.model.byteLevel, err = parsePreTokenizer(f.PreTokenizer); err != nil {
		return nil, fmt.Errorf("tokenizer.json: pre_tokenizer: %w", err)
	}
	if t.decode, err = parseDecoder(f.Decoder); err != nil {
		return nil, fmt.Errorf("tokenizer.json: decoder: %w", err)
	}
	if err := t.model.finish(); err != nil {
		return nil, fmt.Errorf("tokenizer.json: model: %w", err)
	}

	// The id → token table covers the model's vocabulary and the added
	// tokens, which take precedence as in the tokenizers crate.
	t.addedIDs = make(map[string]int32, len(f.AddedTokens))
	size := int32(0)
	for _, id := range t.model.vocab {
		size = max(size, id+1)
	}
	for i, a := range f.AddedTokens {
		if a.ID < 0 || a.Content == "" {
			return nil, fmt.Errorf("tokenizer.json: added_tokens[%d]: id %d, content %q", i, a.ID, a.Content)
		}
		t.addedIDs[a.Content] = a.ID
		size = max(size, a.ID+1)
	}
	t.tokens = make([]string, size)
	t.special = make([]bool, size)
	for tok, id := range t.model.vocab {
		t.tokens[id] = tok
	}
	for _, a := range f.AddedTokens {
		t.tokens[a.ID] = a.Content
		t.special[a.ID] = a.Special
	}
	t.added = f.AddedTokens

	cfg, err := parseTokenizerConfig(cj)
	if err != nil {
		return nil, fmt.Errorf("tokenizer_config.json: %w", err)
	}
	// transformers (v5) makes every special token the config names an
	// added special token when the tokenizer does not have it as one: with
	// its id in the vocabulary, else a new id after the last.
	for _, tok := range cfg.specials {
		if _, ok := t.addedIDs[tok]; ok {
			continue
		}
		id, ok := t.model.vocab[tok]
		if !ok {
			id = int32(len(t.tokens))
			t.tokens = append(t.tokens, "")
			t.special = append(t.special, false)
		}
		a := addedToken{ID: id, Content: tok, Special: true}
		f.AddedTokens = append(f.AddedTokens, a)
		t.addedIDs[tok] = id
		t.tokens[id], t.special[id] = tok, true
	}
	t.added = f.AddedTokens
	var raw, normd []addedToken
	for _, a := range f.AddedTokens {
		switch {
		case a.Special && cfg.splitSpecial:
			// split_special_tokens: special tokens written in the text
			// are tokenized as text.
		case a.Normalized && t.normalize != nil:
			a.Content = t.normalize(a.Content)
			if a.Content != "" {
				normd = append(normd, a)
			}
		default:
			raw = append(raw, a)
		}
	}
	t.raw, t.norm = newAddedMatcher(raw), newAddedMatcher(normd)
	t.chatTemplate = cfg.chatTemplate
	t.specialNames = cfg.names
	t.cleanUp = cfg.cleanUp
	for name, dst := range map[string]*int32{"bos_token": &t.bos, "eos_token": &t.eos, "pad_token": &t.pad, "unk_token": &t.unk} {
		if tok, ok := cfg.names[name]; ok {
			*dst = t.addedIDs[tok]
		}
	}
	if t.unk < 0 && t.model.unk >= 0 {
		t.unk = t.model.unk
	}
	if err := t.parsePost(f.PostProcessor, cfg); err != nil {
		return nil, fmt.Errorf("tokenizer.json: post_processor: %w", err)
	}
	return t, nil
}

func parseBPE(raw json.RawMessage) (*bpe, error) {
	var f bpeFile
	if err := json.Unmarshal(raw, &f); err != nil {
		return nil, err
	}
	// Files written by early versions of the crate leave the type out; the
	// crate then recognizes BPE by its merges.
	if f.Type != "BPE" && !(f.Type == "" && len(f.Merges) > 0) {
		return nil, fmt.Errorf("unsupported model %q (only BPE is implemented)", f.Type)
	}
	if f.Dropout != nil && *f.Dropout != 0 {
		return nil, fmt.Errorf("BPE dropout %v is not supported", *f.Dropout)
	}
	if f.ContinuingSubwordPrefix != nil && *f.ContinuingSubwordPrefix != "" {
		return nil, fmt.Errorf("BPE continuing_subword_prefix %q is not supported", *f.ContinuingSubwordPrefix)
	}
	if f.EndOfWordSuffix != nil && *f.EndOfWordSuffix != "" {
		return nil, fmt.Errorf("BPE end_of_word_suffix %q is not supported", *f.EndOfWordSuffix)
	}
	vocab, err := parseVocab(f.Vocab)
	if err != nil {
		return nil, fmt.Errorf("vocab: %w", err)
	}
	m := &bpe{
		vocab:        vocab,
		unk:          -1,
		fuseUnk:      f.FuseUnk,
		byteFallback: f.ByteFallback,
		ignoreMerges: f.IgnoreMerges,
	}
	for tok, id := range vocab {
		if id < 0 {
			return nil, fmt.Errorf("vocab: token %q has id %d", tok, id)
		}
	}
	if f.UnkToken != nil {
		id, ok := vocab[*f.UnkToken]
		if !ok {
			return nil, fmt.Errorf("unk_token %q is not in the vocabulary", *f.UnkToken)
		}
		m.unk = id
	}
	pairs, err := parseMerges(f.Merges)
	if err != nil {
		return nil, fmt.Errorf("merges: %w", err)
	}
	for i, p := range pairs {
		if p[1] == "" {
			return nil, fmt.Errorf("merges[%d] %q is not two tokens", i, p[0])
		}
	}
	if _, ok := vocab[metaSpace]; ok && !f.IgnoreMerges {
		m.chunkSep = metaSpace
		for _, p := range pairs {
			if strings.HasPrefix(p[1], metaSpace) && !strings.HasSuffix(p[0], metaSpace) {
				m.chunkSep = ""
				break
			}
		}
	}
	m.merges = make(map[uint64]merge, len(pairs))
	for i, p := range pairs {
		a, ok1 := vocab[p[0]]
		b, ok2 := vocab[p[1]]
		id, ok3 := vocab[p[0]+p[1]]
		if !ok1 || !ok2 || !ok3 {
			return nil, fmt.Errorf("merges[%d] %q %q: a token is not in the vocabulary", i, p[0], p[1])
		}
		// A repeated pair keeps its last rank, as in the tokenizers crate.
		m.merges[pairKey(a, b)] = merge{int32(i), id}
	}
	return m, nil
}

// finish builds the byte tables once the pre-tokenizer has said whether
// the model reads bytes.
func (m *bpe) finish() error {
	for b := range 256 {
		m.byteID[b], m.fallbackID[b] = -1, -1
		if id, ok := m.vocab[fmt.Sprintf("<0x%02X>", b)]; ok {
			m.fallbackID[b] = id
		}
		if id, ok := m.vocab[string(byteToUnicode[b])]; ok {
			m.byteID[b] = id
		}
	}
	if !m.byteLevel {
		return nil
	}
	m.chunkSep = ""
	if m.byteFallback && slices.Contains(m.byteID[:], -1) {
		// With every byte in the vocabulary the flag never acts.
		return errors.New("byte_fallback with a ByteLevel pre-tokenizer and bytes missing from the vocabulary is not supported")
	}
	if !m.ignoreMerges {
		return nil // rawVocab serves ignore_merges only
	}
	m.rawVocab = make(map[string]int32, len(m.vocab))
	buf := make([]byte, 0, 64)
	for tok, id := range m.vocab {
		buf = buf[:0]
		ok := true
		for _, r := range tok {
			if int(r) >= len(unicodeToByte) || unicodeToByte[r] < 0 {
				ok = false
				break
			}
			buf = append(buf, byte(unicodeToByte[r]))
		}
		if ok {
			m.rawVocab[string(buf)] = id
		}
	}
	return nil
}

type tokenizerConfig struct {
	names          map[string]string
	addBOS, addEOS *bool
	tokenizerClass string
	chatTemplate   string
	cleanUp        bool
	splitSpecial   bool
	specials       []string // every special token the config names, in transformers' order
}

// specialAttributes are transformers' named special tokens, in its order.
var specialAttributes = []string{"bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token"}

func parseTokenizerConfig(cj []byte) (tokenizerConfig, error) {
	c := tokenizerConfig{names: map[string]string{}}
	if cj == nil {
		return c, nil
	}
	var f map[string]json.RawMessage
	if err := json.Unmarshal(cj, &f); err != nil {
		return c, err
	}
	// A token is a string or an AddedToken written out:
	// {"content": …, "__type": "AddedToken"}.
	token := func(name string, raw json.RawMessage) (string, error) {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			var v struct{ Content string }
			if err := json.Unmarshal(raw, &v); err != nil || v.Content == "" {
				return "", fmt.Errorf("%s: %s is neither a string nor an AddedToken", name, raw)
			}
			s = v.Content
		}
		return s, nil
	}
	for _, name := range specialAttributes {
		raw, ok := f[name]
		if !ok || jsonNull(raw) {
			continue
		}
		s, err := token(name, raw)
		if err != nil {
			return c, err
		}
		c.names[name] = s
		c.specials = append(c.specials, s)
	}
	for _, name := range []string{"additional_special_tokens", "extra_special_tokens"} {
		raw, ok := f[name]
		if !ok || jsonNull(raw) {
			continue
		}
		var list []json.RawMessage
		if err := json.Unmarshal(raw, &list); err != nil {
			// extra_special_tokens may also name its tokens: {"image_token": …}.
			var named map[string]json.RawMessage
			if err := json.Unmarshal(raw, &named); err != nil {
				return c, fmt.Errorf("%s: neither a list nor an object", name)
			}
			for _, k := range slices.Sorted(maps.Keys(named)) {
				list = append(list, named[k])
			}
		}
		for i, r := range list {
			s, err := token(fmt.Sprintf("%s[%d]", name, i), r)
			if err != nil {
				return c, err
			}
			c.specials = append(c.specials, s)
		}
	}
	for name, dst := range map[string]**bool{"add_bos_token": &c.addBOS, "add_eos_token": &c.addEOS} {
		if raw, ok := f[name]; ok && !jsonNull(raw) {
			var b bool
			if err := json.Unmarshal(raw, &b); err != nil {
				return c, fmt.Errorf("%s: %w", name, err)
			}
			*dst = &b
		}
	}
	if raw, ok := f["split_special_tokens"]; ok && !jsonNull(raw) {
		if err := json.Unmarshal(raw, &c.splitSpecial); err != nil {
			return c, fmt.Errorf("split_special_tokens: %w", err)
		}
	}
	if raw, ok := f["clean_up_tokenization_spaces"]; ok && !jsonNull(raw) {
		if err := json.Unmarshal(raw, &c.cleanUp); err != nil {
			return c, fmt.Errorf("clean_up_tokenization_spaces: %w", err)
		}
	}
	if raw, ok := f["tokenizer_class"]; ok && !jsonNull(raw) {
		if err := json.Unmarshal(raw, &c.tokenizerClass); err != nil {
			return c, fmt.Errorf("tokenizer_class: %w", err)
		}
	}
	if raw, ok := f["chat_template"]; ok && !jsonNull(raw) {
		if err := json.Unmarshal(raw, &c.chatTemplate); err != nil {
			// A list of named templates; the default one is what
			// apply_chat_template uses without a name.
			var named []struct{ Name, Template string }
			if err := json.Unmarshal(raw, &named); err != nil {
				return c, fmt.Errorf("chat_template: neither a string nor a list of named templates")
			}
			for _, n := range named {
				if n.Name == "default" {
					c.chatTemplate = n.Template
				}
			}
		}
	}
	return c, nil
}

// parsePost reads the post-processor: the special tokens put around a
// single sequence when add_special_tokens is true. transformers (v5)
// rebuilds it as [bos] A [eos] when tokenizer_config.json sets
// add_bos_token or add_eos_token (the other one then defaulting to false),
// and always for the Llama and Gemma tokenizer classes, whose
// add_bos_token defaults to true; a flag whose token is not configured is
// dropped. Otherwise tokenizer.json's post_processor holds.
func (t *Tokenizer) parsePost(raw json.RawMessage, cfg tokenizerConfig) error {
	addBOS, addEOS := false, false
	rebuild := cfg.addBOS != nil || cfg.addEOS != nil
	switch strings.TrimSuffix(cfg.tokenizerClass, "Fast") {
	case "LlamaTokenizer", "CodeLlamaTokenizer", "GemmaTokenizer":
		rebuild, addBOS = true, true
	}
	if rebuild {
		if cfg.addBOS != nil {
			addBOS = *cfg.addBOS
		}
		if cfg.addEOS != nil {
			addEOS = *cfg.addEOS
		}
		t.prefix, t.suffix = nil, nil
		if addBOS && t.bos >= 0 {
			t.prefix = []int32{t.bos}
		}
		if addEOS && t.eos >= 0 {
			t.suffix = []int32{t.eos}
		}
		return nil
	}
	pre, post, err := parsePostProcessor(raw)
	t.prefix, t.suffix = pre, post
	return err
}

func parsePostProcessor(raw json.RawMessage) (pre, post []int32, err error) {
	if jsonNull(raw) {
		return nil, nil, nil
	}
	var c typed
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, nil, err
	}
	switch c.Type {
	case "ByteLevel":
		return nil, nil, nil // offsets only
	case "Sequence":
		var v struct{ Processors []json.RawMessage }
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, nil, err
		}
		for i, r := range v.Processors {
			p, q, err := parsePostProcessor(r)
			if err != nil {
				return nil, nil, fmt.Errorf("Sequence[%d]: %w", i, err)
			}
			pre, post = append(p, pre...), append(post, q...)
		}
		return pre, post, nil
	case "RobertaProcessing", "BertProcessing":
		var v struct {
			Cls, Sep [2]json.RawMessage
		}
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, nil, err
		}
		var cls, sep int32
		if err := json.Unmarshal(v.Cls[1], &cls); err != nil {
			return nil, nil, fmt.Errorf("%s: cls: %w", c.Type, err)
		}
		if err := json.Unmarshal(v.Sep[1], &sep); err != nil {
			return nil, nil, fmt.Errorf("%s: sep: %w", c.Type, err)
		}
		return []int32{cls}, []int32{sep}, nil
	case "TemplateProcessing":
		var v struct {
			Single []struct {
				SpecialToken *struct{ ID string } `json:"SpecialToken"`
				Sequence     *struct{ ID string } `json:"Sequence"`
			}
			SpecialTokens map[string]struct{ IDs []int32 } `json:"special_tokens"`
		}
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, nil, err
		}
		seen := false
		for i, item := range v.Single {
			switch {
			case item.Sequence != nil:
				if item.Sequence.ID != "A" || seen {
					return nil, nil, fmt.Errorf("TemplateProcessing: single[%d]: sequence %q", i, item.Sequence.ID)
				}
				seen = true
			case item.SpecialToken != nil:
				st, ok := v.SpecialTokens[item.SpecialToken.ID]
				if !ok {
					return nil, nil, fmt.Errorf("TemplateProcessing: special token %q is not in special_tokens", item.SpecialToken.ID)
				}
				if seen {
					post = append(post, st.IDs...)
				} else {
					pre = append(pre, st.IDs...)
				}
			default:
				return nil, nil, fmt.Errorf("TemplateProcessing: single[%d] is neither SpecialToken nor Sequence", i)
			}
		}
		if !seen {
			return nil, nil, errors.New("TemplateProcessing: single has no sequence A")
		}
		return pre, post, nil
	}
	return nil, nil, fmt.Errorf("unsupported post-processor %q", c.Type)
}

// addedMatcher finds added tokens in text, leftmost first and longest
// among those starting at the same byte, as the tokenizers crate's
// Aho-Corasick automaton does.
type addedMatcher struct {
	first  [256][]addedToken // by first byte, longest first
	starts string            // the distinct first bytes
}

func newAddedMatcher(toks []addedToken) *addedMatcher {
	if len(toks) == 0 {
		return nil
	}
	m := new(addedMatcher)
	for _, a := range toks {
		c := a.Content[0]
		if len(m.first[c]) == 0 {
			m.starts += string([]byte{c})
		}
		m.first[c] = append(m.first[c], a)
	}
	for i := range m.first {
		sort.SliceStable(m.first[i], func(a, b int) bool {
			return len(m.first[i][a].Content) > len(m.first[i][b].Content)
		})
	}
	return m
}

// find returns the next added token in s at or after from: the span it
// takes (with the whitespace its lstrip/rstrip absorb, never before from)
// and its id, or ok false.
func (m *addedMatcher) find(s string, from int) (lo, hi int, id int32, ok bool) {
	for i := from; i < len(s); i++ {
		if len(m.starts) == 1 {
			// Usually every added token starts with '<': skip to the next
			// one at memchr speed.
			j := strings.IndexByte(s[i:], m.starts[0])
			if j < 0 {
				break
			}
			i += j
		}
		for _, a := range m.first[s[i]] {
			if !strings.HasPrefix(s[i:], a.Content) {
				continue
			}
			lo, hi = i, i+len(a.Content)
			if a.SingleWord && (endsWithWord(s[:lo]) || startsWithWord(s[hi:])) {
				// Discarded; the search resumes after it, as the crate's
				// non-overlapping leftmost iteration does.
				i = hi - 1
				break
			}
			if a.LStrip {
				for lo > from {
					r, size := utf8.DecodeLastRuneInString(s[:lo])
					if !unicode.IsSpace(r) {
						break
					}
					lo -= size
				}
			}
			if a.RStrip {
				for hi < len(s) {
					r, size := utf8.DecodeRuneInString(s[hi:])
					if !unicode.IsSpace(r) {
						break
					}
					hi += size
				}
			}
			return lo, hi, a.ID, true
		}
	}
	return 0, 0, 0, false
}

// isWord reports whether r is a word character in the sense of Rust's
// regex \w, which the crate's single_word test uses: alphabetic, a mark,
// a decimal digit, a connector punctuation or a joiner.
func isWord(r rune) bool {
	return unicode.In(r, unicode.L, unicode.Nl, unicode.Other_Alphabetic, unicode.M, unicode.Nd, unicode.Pc, unicode.Join_Control)
}

func endsWithWord(s string) bool {
	r, size := utf8.DecodeLastRuneInString(s)
	return size > 0 && isWord(r)
}

func startsWithWord(s string) bool {
	r, size := utf8.DecodeRuneInString(s)
	return size > 0 && isWord(r)
}

// Encode returns the token ids of text as transformers'
// tokenizer(text, add_special_tokens=False) does: added and special tokens
// written in the text are recognized and get their own ids (special ones
// are tokenized as text instead when tokenizer_config.json sets
// split_special_tokens), but no BOS or EOS is added (see AddSpecial). The
// text must be valid UTF-8.
func (t *Tokenizer) Encode(text string) ([]int32, error) {
	if !utf8.ValidString(text) {
		i := 0
		for i < len(text) {
			r, size := utf8.DecodeRuneInString(text[i:])
			if r == utf8.RuneError && size == 1 {
				break
			}
			i += size
		}
		return nil, fmt.Errorf("hf: Encode: text is not valid UTF-8 (byte %d)", i)
	}
	ids := make([]int32, 0, len(text)/3+1)
	ids = t.splitAdded(ids, t.raw, text, true, func(ids []int32, seg string, first bool) []int32 {
		if t.normalize != nil {
			seg = t.normalize(seg)
		}
		return t.splitAdded(ids, t.norm, seg, first, t.encodePiece)
	})
	return ids, nil
}

// splitAdded appends the ids of the added tokens m finds in s and, through
// rest, those of the text between them.
func (t *Tokenizer) splitAdded(ids []int32, m *addedMatcher, s string, first bool, rest func([]int32, string, bool) []int32) []int32 {
	if m == nil {
		return rest(ids, s, first)
	}
	at := 0
	for at < len(s) {
		lo, hi, id, ok := m.find(s, at)
		if !ok {
			break
		}
		if lo > at {
			ids = rest(ids, s[at:lo], first && at == 0)
		}
		ids = append(ids, id)
		at = hi
	}
	if at < len(s) {
		ids = rest(ids, s[at:], first && at == 0)
	}
	return ids
}

// encodePiece pre-tokenizes a normalized piece of text and runs the model
// on each pre-token.
func (t *Tokenizer) encodePiece(ids []int32, s string, first bool) []int32 {
	if s == "" {
		return ids
	}
	if len(t.pre) == 0 {
		return t.model.tokenize(ids, s)
	}
	if len(t.pre) == 1 {
		if sp, ok := t.pre[0].(*splitPre); ok && sp.behavior == "Isolated" && !sp.invert {
			if st, ok := sp.sp.(stepper); ok {
				// The common case (GPT-2, Llama 3, Qwen2), without the
				// piece lists.
				for i := 0; i < len(s); {
					end := st.next(s, i)
					ids = t.model.tokenize(ids, s[i:end])
					i = end
				}
				return ids
			}
		}
	}
	pieces := []piece{{s: s, first: first}}
	var next []piece
	for _, p := range t.pre {
		next = next[:0]
		for _, q := range pieces {
			next = p.split(next, q)
		}
		pieces, next = next, pieces
	}
	for _, p := range pieces {
		ids = t.model.tokenize(ids, p.s)
	}
	return ids
}

// AddSpecial returns ids with the special tokens that transformers'
// add_special_tokens=True adds around a single sequence — the BOS of Llama
// and Mistral, nothing for GPT-2 and Qwen2 — as the post_processor of
// tokenizer.json says, or add_bos_token and add_eos_token of
// tokenizer_config.json where transformers lets them override it.
func (t *Tokenizer) AddSpecial(ids []int32) []int32 {
	out := make([]int32, 0, len(t.prefix)+len(ids)+len(t.suffix))
	out = append(out, t.prefix...)
	out = append(out, ids...)
	return append(out, t.suffix...)
}

// Decode returns the text of ids as the tokenizers crate's decode with
// skip_special_tokens false does (and so transformers' decode without
// clean_up_tokenization_spaces): special tokens are written out, bytes
// that do not form valid UTF-8 become U+FFFD. It returns an error naming
// the first id that is not in the vocabulary.
func (t *Tokenizer) Decode(ids []int32) (string, error) {
	toks := make([]string, len(ids))
	for i, id := range ids {
		if id < 0 || int(id) >= len(t.tokens) || t.tokens[id] == "" {
			return "", fmt.Errorf("hf: Decode: id %d at position %d is not in the vocabulary", id, i)
		}
		toks[i] = t.tokens[id]
	}
	if t.decode == nil {
		return strings.Join(toks, " "), nil
	}
	return strings.Join(t.decode(toks), ""), nil
}

// CleansUp reports whether tokenizer_config.json sets
// clean_up_tokenization_spaces, in which case transformers' decode passes
// its text through CleanUp after the decoder (Llama 3 does; Decode never
// does, so that decoding stays lossless).
func (t *Tokenizer) CleansUp() bool { return t.cleanUp }

// CleanUp removes the spaces transformers' clean_up_tokenization removes,
// before punctuation and English contractions: " ." " ?" " !" " ,"
// " ' " " n't" " 'm" " 's" " 've" " 're". It is a display heuristic for
// WordPiece-era tokenizers, not an inverse of Encode.
func CleanUp(s string) string {
	// One replacement after the other, as Python's chained str.replace.
	for _, r := range [...][2]string{{" .", "."}, {" ?", "?"}, {" !", "!"}, {" ,", ","}, {" ' ", "'"},
		{" n't", "n't"}, {" 'm", "'m"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"}} {
		s = strings.ReplaceAll(s, r[0], r[1])
	}
	return s
}

// VocabSize returns one more than the largest token id, added tokens
// included: the number of rows an embedding needs (len(tokenizer) in
// transformers when, as usual, the ids have no gaps).
func (t *Tokenizer) VocabSize() int { return len(t.tokens) }

// TokenID returns the id of token (a vocabulary entry as tokenizer.json
// spells it, e.g. "Ġthe" for a byte-level tokenizer) or ok false.
func (t *Tokenizer) TokenID(token string) (id int32, ok bool) {
	if id, ok = t.addedIDs[token]; ok {
		return id, ok
	}
	id, ok = t.model.vocab[token]
	return id, ok
}

// Token returns the vocabulary entry of id or ok false.
func (t *Tokenizer) Token(id int32) (token string, ok bool) {
	if id < 0 || int(id) >= len(t.tokens) || t.tokens[id] == "" {
		return "", false
	}
	return t.tokens[id], true
}

// IsSpecial reports whether id is an added token marked special (such as
// BOS, EOS or <|im_start|>), the tokens skip_special_tokens drops.
func (t *Tokenizer) IsSpecial(id int32) bool {
	return id >= 0 && int(id) < len(t.special) && t.special[id]
}

// BOS returns the id of the configured beginning-of-sequence token.
func (t *Tokenizer) BOS() (id int32, ok bool) { return t.bos, t.bos >= 0 }

// EOS returns the id of the configured end-of-sequence token.
func (t *Tokenizer) EOS() (id int32, ok bool) { return t.eos, t.eos >= 0 }

// Pad returns the id of the configured padding token.
func (t *Tokenizer) Pad() (id int32, ok bool) { return t.pad, t.pad >= 0 }

// Unk returns the id of the unknown token (tokenizer_config.json's
// unk_token, else the BPE model's).
func (t *Tokenizer) Unk() (id int32, ok bool) { return t.unk, t.unk >= 0 }

// AddedTokens returns the ids of the added tokens (special or not), in
// increasing order.
func (t *Tokenizer) AddedTokens() []int32 {
	ids := make([]int32, len(t.added))
	for i, a := range t.added {
		ids[i] = a.ID
	}
	slices.Sort(ids)
	return slices.Compact(ids)
}
