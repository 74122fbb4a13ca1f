// Command etcd is etcd's own server entry point, wrapped in a module of ours: `go install` of
// go.etcd.io/etcd/server/v3 is refused because its go.mod carries replace directives.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
