module tributary.dev/examples/custom/ledger

go 1.22
