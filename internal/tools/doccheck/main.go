// Command doccheck measures how many of the module's exported identifiers
// carry a doc comment, and lists the ones that do not.
//
//	go run ./internal/tools/doccheck [-min 98] [-strict] [-fields] [-v] [dir]
//
// It counts what a reader of the API sees: exported functions, types,
// constants and variables at package level and exported methods of
// exported types, in every non-test file of every library package under
// dir (default "."); with -fields, also the exported fields of exported
// structs and the methods of exported interfaces. Commands (package main),
// test files, testdata and _gen folders are skipped.
//
// An identifier is documented by a comment above it or a trailing comment
// on its line; a constant or variable in a parenthesized group also by the
// group's comment, unless -strict; a field line's comment documents every
// name on it.
//
// With -min, it exits with status 1 when the coverage is below that
// percentage.
package main

import (
	"flag"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

func main() {
	minPct := flag.Float64("min", 0, "exit 1 below this coverage, in percent")
	verbose := flag.Bool("v", false, "list every undocumented identifier")
	flag.Parse()
	root := "."
	if flag.NArg() > 0 {
		root = flag.Arg(0)
	}
	r, err := Check(root)
	if err != nil {
		fmt.Fprintln(os.Stderr, "doccheck:", err)
		os.Exit(2)
	}
	if *verbose {
		for _, m := range r.Missing {
			fmt.Println(m)
		}
	}
	fmt.Printf("%d of %d exported identifiers documented (%.1f%%)\n", r.Documented, r.Total, r.Percent())
	if r.Percent() < *minPct {
		fmt.Printf("below the floor of %.1f%%; run with -v for the list\n", *minPct)
		os.Exit(1)
	}
}

// Report is the result of Check.
type Report struct {
	Total, Documented int
	Missing           []string // "file:line: Name" of each undocumented identifier
}

// Percent returns the documented share in percent; 100 for no identifiers.
func (r Report) Percent() float64 {
	if r.Total == 0 {
		return 100
	}
	return 100 * float64(r.Documented) / float64(r.Total)
}

// Check measures the library packages under root.
func Check(root string) (Report, error) {
	var r Report
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			name := d.Name()
			if path != root && (name == "testdata" || name == "_gen" || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_")) {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ParseComments)
		if err != nil {
			return err
		}
		if f.Name.Name == "main" {
			return nil
		}
		file(fset, f, &r)
		return nil
	})
	sort.Strings(r.Missing)
	return r, err
}

var fields = flag.Bool("fields", false, "count exported struct fields and interface methods too")

var strict = flag.Bool("strict", false, "count a grouped constant or variable as documented only by its own comment")

func file(fset *token.FileSet, f *ast.File, r *Report) {
	count := func(name *ast.Ident, ok bool) {
		r.Total++
		if ok {
			r.Documented++
			return
		}
		p := fset.Position(name.Pos())
		r.Missing = append(r.Missing, fmt.Sprintf("%s:%d: %s", p.Filename, p.Line, name.Name))
	}
	for _, decl := range f.Decls {
		switch d := decl.(type) {
		case *ast.FuncDecl:
			if !d.Name.IsExported() {
				continue
			}
			if d.Recv != nil && !exportedRecv(d.Recv) {
				continue
			}
			name := d.Name
			if d.Recv != nil {
				name = &ast.Ident{Name: recvName(d.Recv) + "." + d.Name.Name, NamePos: d.Name.Pos()}
			}
			count(name, d.Doc != nil)
		case *ast.GenDecl:
			for _, spec := range d.Specs {
				switch s := spec.(type) {
				case *ast.TypeSpec:
					if s.Name.IsExported() {
						count(s.Name, s.Doc != nil || s.Comment != nil || (d.Doc != nil && !d.Lparen.IsValid()))
						if *fields {
							members(s, count)
						}
					}
				case *ast.ValueSpec:
					for _, n := range s.Names {
						if n.IsExported() {
							count(n, s.Doc != nil || s.Comment != nil || (d.Doc != nil && (!d.Lparen.IsValid() || !*strict)))
						}
					}
				}
			}
		}
	}
}

// members counts the exported fields of an exported struct and the
// methods of an exported interface: a reader needs them explained as much
// as the functions. A field line documents every name on it.
func members(s *ast.TypeSpec, count func(*ast.Ident, bool)) {
	var list *ast.FieldList
	switch t := s.Type.(type) {
	case *ast.StructType:
		list = t.Fields
	case *ast.InterfaceType:
		list = t.Methods
	default:
		return
	}
	for _, f := range list.List {
		for _, n := range f.Names {
			if n.IsExported() {
				count(&ast.Ident{Name: s.Name.Name + "." + n.Name, NamePos: n.Pos()}, f.Doc != nil || f.Comment != nil)
			}
		}
	}
}

func recvType(recv *ast.FieldList) ast.Expr {
	t := recv.List[0].Type
	if s, ok := t.(*ast.StarExpr); ok {
		t = s.X
	}
	switch x := t.(type) {
	case *ast.IndexExpr: // generic receiver T[P]
		t = x.X
	case *ast.IndexListExpr:
		t = x.X
	}
	return t
}

func exportedRecv(recv *ast.FieldList) bool {
	id, ok := recvType(recv).(*ast.Ident)
	return ok && id.IsExported()
}

func recvName(recv *ast.FieldList) string {
	if id, ok := recvType(recv).(*ast.Ident); ok {
		return id.Name
	}
	return "?"
}
