package recipe

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/posttrain/posttrain/prefopt"
	"github.com/posttrain/posttrain/tensor/nn/hf"
)

func testEncoder(t *testing.T) *Encoder {
	t.Helper()
	tok, err := hf.LoadTokenizer("testdata/tok")
	if err != nil {
		t.Fatal(err)
	}
	return &Encoder{Tokenizer: tok}
}

func TestReadPairs(t *testing.T) {
	e := testEncoder(t)
	tok := e.Tokenizer
	eos, _ := tok.EOS()
	in := `{"prompt": "the cat", "chosen": " sat", "rejected": " ran", "level": "better"}

{"prompt": [{"role": "user", "content": "hi"}], "chosen": [{"role": "assistant", "content": "hello"}], "rejected": [{"role": "assistant", "content": "go"}]}
{"chosen": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}], "rejected": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "go"}]}
`
	pairs, err := e.ReadPairs(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if len(pairs) != 3 {
		t.Fatalf("%d pairs", len(pairs))
	}
	p0 := pairs[0]
	wantP, _ := tok.Encode("the cat")
	wantC, _ := tok.Encode(" sat")
	if !slices.Equal(p0.Prompt, wantP) || !slices.Equal(p0.Chosen, append(wantC, eos)) || p0.Level != prefopt.Better || p0.Line != 1 {
		t.Errorf("plain pair: %+v", p0)
	}
	// Conversational: the prompt ends with the generation prompt, the
	// completion is what the full conversation adds, ending <|im_end|>\n.
	msgs := []hf.Message{{Role: "user", Content: "hi"}}
	wantPrompt, _ := tok.EncodeChat(msgs, hf.ChatOptions{AddGenerationPrompt: true})
	full, _ := tok.EncodeChat(append(msgs, hf.Message{Role: "assistant", Content: "hello"}), hf.ChatOptions{})
	for _, p := range pairs[1:] {
		if !slices.Equal(p.Prompt, wantPrompt) {
			t.Errorf("line %d: prompt %v, want %v", p.Line, p.Prompt, wantPrompt)
		}
		if got := append(slices.Clone(p.Prompt), p.Chosen...); !slices.Equal(got, full) {
			t.Errorf("line %d: prompt+chosen %v, full conversation %v", p.Line, got, full)
		}
		if !slices.Contains(p.Chosen, eos) {
			t.Errorf("line %d: chosen lacks the template's end of turn", p.Line)
		}
	}
	if pairs[1].Line != 3 || pairs[2].Line != 4 {
		t.Errorf("lines %d, %d", pairs[1].Line, pairs[2].Line)
	}
}

func TestTruncation(t *testing.T) {
	e := testEncoder(t)
	e.MaxPrompt, e.PromptTruncation = 3, KeepEnd
	e.MaxCompletion, e.CompletionTruncation = 2, KeepStart
	p, err := e.EncodePair("abcdef", "xyz", "uv")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(p.Prompt, []int32{'d', 'e', 'f'}) || !slices.Equal(p.Chosen, []int32{'x', 'y'}) || !slices.Equal(p.Rejected, []int32{'u', 'v'}) {
		t.Errorf("truncated pair %+v", p)
	}
}

// TestRecordErrors: bad records are errors naming their line and field.
func TestRecordErrors(t *testing.T) {
	e := testEncoder(t)
	e.MaxPrompt = 8
	good := `{"prompt": "a", "chosen": "b", "rejected": "c"}` + "\n"
	for _, c := range []struct {
		name, line, field, msg string
	}{
		{"long prompt", `{"prompt": "a prompt far longer than eight tokens", "chosen": "b", "rejected": "c"}`, "prompt", "exceeds the limit of 8"},
		{"empty chosen", `{"prompt": "a", "chosen": "", "rejected": "c"}`, "chosen", "empty completion"},
		{"empty rejected message", `{"prompt": [{"role": "user", "content": "a"}], "chosen": [{"role": "assistant", "content": "b"}], "rejected": [{"role": "assistant", "content": ""}]}`, "rejected", "empty completion"},
		{"missing rejected", `{"prompt": "a", "chosen": "b"}`, "rejected", "missing"},
		{"template fails", `{"prompt": [{"role": "user", "content": "a"}], "chosen": [{"role": "assistant", "content": "b"}], "rejected": [{"role": "assistant", "content": "c"}]}`, "prompt", "a system message must come first"},
		{"mixed", `{"prompt": "a", "chosen": [{"role": "assistant", "content": "b"}], "rejected": "c"}`, "chosen", "both be"},
		{"implicit prompts differ", `{"chosen": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}], "rejected": [{"role": "user", "content": "z"}, {"role": "assistant", "content": "c"}]}`, "rejected", "differs"},
		{"not json", `{"prompt": `, "", "unexpected"},
		{"bad level", `{"prompt": "a", "chosen": "b", "rejected": "c", "level": "best"}`, "", "level"},
	} {
		t.Run(c.name, func(t *testing.T) {
			enc := e
			if c.name == "template fails" {
				// A template that raises on conversations without a
				// system message, as some models' templates do.
				dir := t.TempDir()
				for _, f := range []string{"tokenizer.json", "tokenizer_config.json"} {
					b, _ := os.ReadFile(filepath.Join("testdata/tok", f))
					os.WriteFile(filepath.Join(dir, f), b, 0o644)
				}
				os.WriteFile(filepath.Join(dir, "chat_template.jinja"), []byte(
					"{% if messages[0]['role'] != 'system' %}{{ raise_exception('a system message must come first') }}{% endif %}"+
						"{% for m in messages %}{{ m['content'] }}{% endfor %}"), 0o644)
				tok, err := hf.LoadTokenizer(dir)
				if err != nil {
					t.Fatal(err)
				}
				enc = &Encoder{Tokenizer: tok}
			}
			_, err := enc.ReadPairs(strings.NewReader(good + c.line + "\n" + good))
			var re *RecordError
			if !errors.As(err, &re) {
				t.Fatalf("error %v, want a RecordError", err)
			}
			if re.Line != 2 || re.Field != c.field || !strings.Contains(err.Error(), c.msg) {
				t.Fatalf("error %q (line %d, field %q), want line 2, field %q, mentioning %q", err, re.Line, re.Field, c.field, c.msg)
			}
		})
	}
}

func TestReadExamples(t *testing.T) {
	e := testEncoder(t)
	in := `{"prompt": "the", "completion": " cat"}
{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}
{"messages": [{"role": "user", "content": "hi"}]}
`
	_, err := e.ReadExamples(strings.NewReader(in))
	var re *RecordError
	if !errors.As(err, &re) || re.Line != 3 || re.Field != "messages" {
		t.Fatalf("error %v, want line 3 field messages", err)
	}
	xs, err := e.ReadExamples(strings.NewReader(strings.Join(strings.Split(in, "\n")[:2], "\n")))
	if err != nil || len(xs) != 2 {
		t.Fatalf("%d examples, %v", len(xs), err)
	}
	s, err := NewSeqs([][]int32{xs[0].Prompt, xs[1].Prompt}, [][]int32{xs[0].Completion, xs[1].Completion}, 0)
	if err != nil {
		t.Fatal(err)
	}
	// Prompt masking: only completion tokens are targets.
	n := 0
	for _, y := range s.Labels {
		if y >= 0 {
			n++
		}
	}
	if n != len(xs[0].Completion)+len(xs[1].Completion) || n != s.CompletionTokens() {
		t.Errorf("%d scored positions, completions hold %d", n, s.CompletionTokens())
	}
}
