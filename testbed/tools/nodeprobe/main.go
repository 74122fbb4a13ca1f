// Command nodeprobe checks the test bed node's network from inside a pod (docs/testbed-node.md). The node
// has no registry to pull a shell image from, so its image is this static binary:
//
//	nodeprobe serve PORT        answer every HTTP request with "nodeprobe <hostname>"
//	nodeprobe get URL           GET URL and print the response's status and body; fail unless it is 2xx
//	nodeprobe lookup NAME       resolve NAME through the pod's resolv.conf and print the addresses
package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"
)

func main() {
	if len(os.Args) != 3 {
		fail("usage: nodeprobe serve PORT | get URL | lookup NAME")
	}
	arg := os.Args[2]
	switch os.Args[1] {
	case "serve":
		serve(arg)
	case "get":
		get(arg)
	case "lookup":
		lookup(arg)
	default:
		fail("unknown command " + os.Args[1])
	}
}

func serve(port string) {
	host, _ := os.Hostname()
	http.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintf(w, "nodeprobe %s\n", host) })
	server := &http.Server{Addr: ":" + port, ReadHeaderTimeout: 5 * time.Second}
	fail(server.ListenAndServe().Error())
}

func get(url string) {
	client := &http.Client{Timeout: 10 * time.Second}
	response, err := client.Get(url)
	if err != nil {
		fail(err.Error())
	}
	defer response.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(response.Body, 4096))
	fmt.Printf("%d %s", response.StatusCode, body)
	if response.StatusCode/100 != 2 {
		os.Exit(1)
	}
}

func lookup(name string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	addresses, err := net.DefaultResolver.LookupHost(ctx, name)
	if err != nil {
		fail(err.Error())
	}
	for _, address := range addresses {
		fmt.Println(address)
	}
}

func fail(message string) {
	fmt.Fprintln(os.Stderr, "nodeprobe:", message)
	os.Exit(1)
}
