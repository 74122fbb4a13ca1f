// Command nodeprobe checks the test bed node's network from inside a pod (docs/testbed-node.md). The node
// has no registry to pull a shell image from, so its image is this static binary:
//
//	nodeprobe serve PORT        answer every HTTP request with "nodeprobe <hostname>"
//	nodeprobe get URL           GET URL and print the response's status and body; fail unless it is 2xx
//	nodeprobe lookup NAME       resolve NAME through the pod's resolv.conf and print the addresses
//	nodeprobe whoami -          ask the API server who this pod is, as a client with in-cluster configuration
//	                            does: KUBERNETES_SERVICE_HOST:PORT, the service account's token and CA
//	nodeprobe tls HOST:PORT     a TLS handshake, the server's certificate verified for HOST (SSL_CERT_FILE)
//	nodeprobe kafka HOST:PORT   ask a Kafka broker (plaintext) for its brokers, then each broker at the
//	                            address it advertises, and print them
package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"
)

func main() {
	if len(os.Args) != 3 {
		fail("usage: nodeprobe serve PORT | get URL | lookup NAME | whoami - | tls HOST:PORT | kafka HOST:PORT")
	}
	arg := os.Args[2]
	switch os.Args[1] {
	case "serve":
		serve(arg)
	case "get":
		get(arg)
	case "lookup":
		lookup(arg)
	case "whoami":
		whoami()
	case "tls":
		handshake(arg)
	case "kafka":
		kafka(arg)
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

// whoami creates a SelfSubjectReview (allowed to every authenticated user) through the in-cluster
// configuration and prints the answer, which names the service account.
func whoami() {
	account := "/var/run/secrets/kubernetes.io/serviceaccount/"
	token, err := os.ReadFile(account + "token")
	if err != nil {
		fail(err.Error())
	}
	ca, err := os.ReadFile(account + "ca.crt")
	if err != nil {
		fail(err.Error())
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(ca)
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	host := net.JoinHostPort(os.Getenv("KUBERNETES_SERVICE_HOST"), os.Getenv("KUBERNETES_SERVICE_PORT"))
	body := `{"apiVersion":"authentication.k8s.io/v1","kind":"SelfSubjectReview"}`
	request, _ := http.NewRequest("POST", "https://"+host+"/apis/authentication.k8s.io/v1/selfsubjectreviews", strings.NewReader(body))
	request.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
	request.Header.Set("Content-Type", "application/json")
	response, err := client.Do(request)
	if err != nil {
		fail(err.Error())
	}
	defer response.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(response.Body, 4096))
	fmt.Printf("%d %s via %s", response.StatusCode, answer, host)
	if response.StatusCode/100 != 2 {
		os.Exit(1)
	}
}

func handshake(address string) {
	host, _, _ := net.SplitHostPort(address)
	dialer := &net.Dialer{Timeout: 10 * time.Second}
	conn, err := tls.DialWithDialer(dialer, "tcp", address, &tls.Config{ServerName: host})
	if err != nil {
		fail(err.Error())
	}
	defer conn.Close()
	fmt.Printf("tls ok %s issued by %s\n", address, conn.ConnectionState().PeerCertificates[0].Issuer.CommonName)
}

// kafka sends a Metadata request (version 4: no topics, only the brokers) to address, and again to every
// broker at the address it advertises, so a broker advertising an address a pod cannot reach fails here.
func kafka(address string) {
	brokers := kafkaBrokers(address)
	for _, broker := range brokers {
		kafkaBrokers(broker)
		fmt.Printf("broker %s answered\n", broker)
	}
}

func kafkaBrokers(address string) []string {
	conn, err := net.DialTimeout("tcp", address, 10*time.Second)
	if err != nil {
		fail(err.Error())
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	var request bytes.Buffer
	// Header: api key 3 (Metadata), version 4, correlation id 1, client id; body: topics [] (none), no
	// topic creation.
	for _, field := range []any{int16(3), int16(4), int32(1), int16(9), []byte("nodeprobe"), int32(0), int8(0)} {
		_ = binary.Write(&request, binary.BigEndian, field)
	}
	_ = binary.Write(conn, binary.BigEndian, int32(request.Len()))
	if _, err := conn.Write(request.Bytes()); err != nil {
		fail(err.Error())
	}
	var size int32
	if err := binary.Read(conn, binary.BigEndian, &size); err != nil || size < 12 || size > 1<<20 {
		fail(fmt.Sprintf("kafka %s: no metadata answer (%v)", address, err))
	}
	answer := make([]byte, size)
	if _, err := io.ReadFull(conn, answer); err != nil {
		fail(err.Error())
	}
	// Correlation id, throttle time, then brokers: node id, host, port, rack.
	reader := bytes.NewReader(answer[8:])
	var count int32
	_ = binary.Read(reader, binary.BigEndian, &count)
	var brokers []string
	for i := int32(0); i < count; i++ {
		var id, port int32
		_ = binary.Read(reader, binary.BigEndian, &id)
		host := kafkaString(reader)
		_ = binary.Read(reader, binary.BigEndian, &port)
		kafkaString(reader)
		brokers = append(brokers, net.JoinHostPort(host, fmt.Sprint(port)))
	}
	if len(brokers) == 0 {
		fail("kafka " + address + ": no brokers in the metadata")
	}
	return brokers
}

func kafkaString(reader *bytes.Reader) string {
	var length int16
	if binary.Read(reader, binary.BigEndian, &length) != nil || length < 0 {
		return ""
	}
	text := make([]byte, length)
	_, _ = io.ReadFull(reader, text)
	return string(text)
}

func fail(message string) {
	fmt.Fprintln(os.Stderr, "nodeprobe:", message)
	os.Exit(1)
}
