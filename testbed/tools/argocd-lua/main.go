// Command argocd-lua runs an Argo CD resource health script the way Argo CD does: the object (JSON on
// stdin) is the global `obj`, the script returns a table with `status` and `message`, and only the Lua
// libraries Argo CD opens for health scripts are available (no io, no os). It prints that table as JSON.
//
// Usage: argocd-lua SCRIPT.lua < object.json
//
// Argo CD itself evaluates these scripts with the same interpreter, gopher-lua; this wrapper exists so the
// project's tests can check its health.lua against sample objects without an Argo CD installation.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	lua "github.com/yuin/gopher-lua"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: argocd-lua SCRIPT.lua < object.json")
		os.Exit(2)
	}
	script, err := os.ReadFile(os.Args[1])
	if err != nil {
		fail(err)
	}
	input, err := io.ReadAll(os.Stdin)
	if err != nil {
		fail(err)
	}
	var obj any
	if err := json.Unmarshal(input, &obj); err != nil {
		fail(fmt.Errorf("the object on stdin is not JSON: %w", err))
	}
	l := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer l.Close()
	for _, lib := range []struct {
		name string
		open lua.LGFunction
	}{
		{lua.LoadLibName, lua.OpenPackage},
		{lua.BaseLibName, lua.OpenBase},
		{lua.TabLibName, lua.OpenTable},
		{lua.StringLibName, lua.OpenString},
		{lua.MathLibName, lua.OpenMath},
	} {
		l.Push(l.NewFunction(lib.open))
		l.Push(lua.LString(lib.name))
		l.Call(1, 0)
	}
	l.SetGlobal("obj", toLua(l, obj))
	if err := l.DoString(string(script)); err != nil {
		fail(err)
	}
	result, ok := l.Get(-1).(*lua.LTable)
	if !ok {
		fail(fmt.Errorf("the script returned %s, not a table", l.Get(-1).Type()))
	}
	out := map[string]string{}
	result.ForEach(func(k, v lua.LValue) { out[k.String()] = v.String() })
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		fail(err)
	}
}

// toLua converts decoded JSON to Lua values as Argo CD does: objects and arrays become tables (arrays
// 1-based), numbers become numbers, null becomes nil.
func toLua(l *lua.LState, value any) lua.LValue {
	switch v := value.(type) {
	case nil:
		return lua.LNil
	case bool:
		return lua.LBool(v)
	case float64:
		return lua.LNumber(v)
	case string:
		return lua.LString(v)
	case []any:
		t := l.NewTable()
		for _, item := range v {
			t.Append(toLua(l, item))
		}
		return t
	case map[string]any:
		t := l.NewTable()
		for key, item := range v {
			t.RawSetString(key, toLua(l, item))
		}
		return t
	default:
		panic(fmt.Sprintf("unexpected JSON value %T", value))
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "argocd-lua:", err)
	os.Exit(1)
}
