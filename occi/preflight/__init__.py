"""Pre-flight commands for a cluster run: `occi fetch` (everything the run reads from the hub, on
a login node) and `occi doctor` (does this node run what the run assumes). Not pipeline stages:
they write no stage folder, only <run>/fetch.json and <run>/doctor.json."""
