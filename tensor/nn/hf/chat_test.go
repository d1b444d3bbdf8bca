package hf

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// chatGoldens is testdata/chat/goldens.json, written by gen.mjs with
// @huggingface/jinja and @huggingface/tokenizers.
type chatGoldens struct {
	Conversations [][]Message
	Renders       []struct {
		Template            string
		Conversation        int
		AddGenerationPrompt bool `json:"add_generation_prompt"`
		Text                *string
		Error               bool
		Tools               bool
	}
	ToolsJSON        json.RawMessage `json:"tools"`
	ToolConversation []Message       `json:"tool_conversation"`
	Encodings        []struct {
		Fixture, Template   string
		Conversation        int
		AddGenerationPrompt bool `json:"add_generation_prompt"`
		IDs                 []int32
	}
}

// chatSpecials mirrors the special tokens gen.mjs passes each template.
var chatSpecials = map[string]map[string]string{
	"smollm2": {"bos_token": "<|im_start|>", "eos_token": "<|im_end|>", "pad_token": "<|im_end|>", "unk_token": "<|endoftext|>"},
	"qwen2.5": {"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"},
	"qwen3":   {"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"},
	"llama3":  {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"},
	"llama2":  {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"},
}

func loadChatGoldens(t *testing.T) *chatGoldens {
	b, err := os.ReadFile(filepath.Join("testdata", "chat", "goldens.json"))
	if err != nil {
		t.Fatal(err)
	}
	var g chatGoldens
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	return &g
}

func readTemplate(t *testing.T, name string) string {
	b, err := os.ReadFile(filepath.Join("testdata", "chat", name+".jinja"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestChatTemplateGoldens(t *testing.T) {
	g := loadChatGoldens(t)
	tmpls := map[string]*ChatTemplate{}
	for name, sp := range chatSpecials {
		c, err := NewChatTemplate(readTemplate(t, name), sp)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		tmpls[name] = c
	}
	for _, r := range g.Renders {
		opts := ChatOptions{AddGenerationPrompt: r.AddGenerationPrompt}
		if r.Tools {
			opts.Vars = map[string]any{"tools": g.ToolsJSON}
		}
		msgs := g.ToolConversation // conversation -1
		if r.Conversation >= 0 {
			msgs = g.Conversations[r.Conversation]
		}
		got, err := tmpls[r.Template].Render(msgs, opts)
		if r.Error {
			if err == nil {
				t.Errorf("%s conversation %d: rendered %q, want an error", r.Template, r.Conversation, got)
			} else if !strings.Contains(err.Error(), "roles must alternate") {
				t.Errorf("%s conversation %d: error %v does not carry the template's message", r.Template, r.Conversation, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s conversation %d: %v", r.Template, r.Conversation, err)
			continue
		}
		if got != *r.Text {
			t.Errorf("%s conversation %d, generation prompt %v:\n got %q\nwant %q", r.Template, r.Conversation, r.AddGenerationPrompt, got, *r.Text)
		}
	}
}

// TestEncodeChat renders conversations and encodes them, and compares the
// ids with tokenizers.js's encoding of the golden render: Qwen2 through a
// model directory that ships its template as chat_template.jinja, Llama 3
// through the loaded fixture and NewChatTemplate.
func TestEncodeChat(t *testing.T) {
	g := loadChatGoldens(t)
	dir := t.TempDir()
	src := fixtureDir(t, "qwen2")
	for _, f := range []string{"tokenizer.json", "tokenizer_config.json"} {
		b, err := os.ReadFile(filepath.Join(src, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "chat_template.jinja"), []byte(readTemplate(t, "qwen2.5")), 0o644); err != nil {
		t.Fatal(err)
	}
	qwen, err := LoadTokenizer(dir)
	if err != nil {
		t.Fatal(err)
	}
	llama := fixture(t, "llama3")
	llamaChat, err := NewChatTemplate(readTemplate(t, "llama3"), llama.specialNames)
	if err != nil {
		t.Fatal(err)
	}
	n := map[string]int{}
	for _, e := range g.Encodings {
		msgs, opts := g.Conversations[e.Conversation], ChatOptions{AddGenerationPrompt: e.AddGenerationPrompt}
		var ids []int32
		switch e.Fixture {
		case "qwen2":
			ids, err = qwen.EncodeChat(msgs, opts)
		case "llama3":
			var s string
			if s, err = llamaChat.Render(msgs, opts); err == nil {
				ids, err = llama.Encode(s)
			}
		}
		if err != nil {
			t.Fatalf("%s conversation %d: %v", e.Fixture, e.Conversation, err)
		}
		if !slices.Equal(ids, e.IDs) {
			t.Errorf("%s conversation %d, generation prompt %v:\n got %v\nwant %v", e.Fixture, e.Conversation, e.AddGenerationPrompt, ids, e.IDs)
		}
		n[e.Fixture]++
	}
	if n["qwen2"] == 0 || n["llama3"] == 0 {
		t.Fatalf("encodings per fixture: %v", n)
	}
}

func TestChatTemplateErrors(t *testing.T) {
	if _, err := fixture(t, "gpt2").ApplyChatTemplate([]Message{{Role: "user", Content: "hi"}}, ChatOptions{}); err == nil || !strings.Contains(err.Error(), "no chat template") {
		t.Errorf("no template: %v", err)
	}
	for _, src := range []string{"", "{% for m in messages %}{{ m.content }}", "{{ messages | no_such_filter }}", "{% macro %}"} {
		c, err := NewChatTemplate(src, nil)
		if err == nil {
			_, err = c.Render([]Message{{Role: "user", Content: "hi"}}, ChatOptions{})
		}
		if err == nil || !strings.HasPrefix(err.Error(), "hf: ") {
			t.Errorf("template %q: error %v", src, err)
		}
	}
	c, err := NewChatTemplate("{{ messages[0].content }}", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Render(nil, ChatOptions{Vars: map[string]any{"messages": nil}}); err == nil {
		t.Error("Vars may set messages")
	}
}

func TestJSONVars(t *testing.T) {
	c, err := NewChatTemplate(`{{ tools | tojson }}|{{ tools[0].b }}`, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.Render(nil, ChatOptions{Vars: map[string]any{"tools": json.RawMessage(`[{"z": 1, "b": 2.5, "a": [true, null, "x"]}]`)}})
	if want := `[{"z": 1, "b": 2.5, "a": [true, null, "x"]}]|2.5`; err != nil || got != want {
		t.Errorf("got %q, %v; want %q", got, err, want)
	}
	if _, err := c.Render([]Message{{Role: "user", Extra: json.RawMessage(`[1]`)}}, ChatOptions{}); err == nil || !strings.Contains(err.Error(), "message 0: Extra") {
		t.Errorf("Extra not an object: %v", err)
	}
	for _, bad := range []string{`{"a": }`, `[1] 2`, ``} {
		if _, err := c.Render(nil, ChatOptions{Vars: map[string]any{"tools": json.RawMessage(bad)}}); err == nil || !strings.Contains(err.Error(), `Vars["tools"]`) {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

// TestPromptCompletion checks PromptCompletion and ContinueFinalMessage
// against TRL's and transformers' rules applied to the golden renders:
// the prompt is the render of the prompt with the generation prompt, the
// completion what the render of the whole conversation adds to it (or an
// error when it does not start with the prompt's); continuing cuts the
// render after the last occurrence of the final message's text.
func TestPromptCompletion(t *testing.T) {
	g := loadChatGoldens(t)
	render := func(name string, conv int, agp bool) *string {
		for _, r := range g.Renders {
			if r.Template == name && r.Conversation == conv && r.AddGenerationPrompt == agp && !r.Tools && !r.Error {
				return r.Text
			}
		}
		return nil
	}
	n := 0
	for name, sp := range chatSpecials {
		c, err := NewChatTemplate(readTemplate(t, name), sp)
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range [][2]int{{1, 7}, {0, 8}} { // prompt conversation, whole conversation
			prompt, whole := render(name, k[0], true), render(name, k[1], false)
			if prompt == nil || whole == nil {
				t.Fatalf("%s: no golden render of conversations %v", name, k)
			}
			conv := g.Conversations[k[1]]
			p, comp, err := c.PromptCompletion(conv[:len(conv)-1], conv[len(conv)-1:], ChatOptions{})
			if !strings.HasPrefix(*whole, *prompt) {
				if err == nil {
					t.Errorf("%s %v: no error though the whole render does not start with the prompt's", name, k)
				}
				continue
			}
			if err != nil || p != *prompt || comp != (*whole)[len(*prompt):] {
				t.Errorf("%s %v: %q, %q, %v", name, k, p, comp, err)
			}
			n++
		}
		// [u1, a1] continued: the render cut after "4.".
		whole := *render(name, 8, false)
		want := whole[:strings.LastIndex(whole, "4.")+2]
		if got, err := c.Render(g.Conversations[8], ChatOptions{ContinueFinalMessage: true}); err != nil || got != want {
			t.Errorf("%s continued: %q, %v; want %q", name, got, err, want)
		}
	}
	if n < 6 {
		t.Errorf("only %d prompt-completion cases checked", n)
	}
	c, _ := NewChatTemplate(readTemplate(t, "smollm2"), nil)
	for _, bad := range [][]Message{nil, {{Role: "system", Content: "x"}}} {
		if _, _, err := c.PromptCompletion(bad, []Message{{Role: "assistant", Content: "y"}}, ChatOptions{}); err == nil {
			t.Errorf("prompt %v: no error", bad)
		}
	}
	if _, err := c.Render([]Message{{Role: "user", Content: "zzz"}}, ChatOptions{ContinueFinalMessage: true, AddGenerationPrompt: true}); err == nil {
		t.Error("ContinueFinalMessage with a generation prompt: no error")
	}
}
