module tributary.dev/testbed/nodeprobe

go 1.26.0
