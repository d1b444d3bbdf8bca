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
	}
	Encodings []struct {
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
		got, err := tmpls[r.Template].Render(g.Conversations[r.Conversation], ChatOptions{AddGenerationPrompt: r.AddGenerationPrompt})
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
	if _, err := fixture(t, "gpt2").ApplyChatTemplate([]Message{{"user", "hi"}}, ChatOptions{}); err == nil || !strings.Contains(err.Error(), "no chat template") {
		t.Errorf("no template: %v", err)
	}
	for _, src := range []string{"", "{% for m in messages %}{{ m.content }}", "{{ messages | no_such_filter }}", "{% macro %}"} {
		c, err := NewChatTemplate(src, nil)
		if err == nil {
			_, err = c.Render([]Message{{"user", "hi"}}, ChatOptions{})
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
