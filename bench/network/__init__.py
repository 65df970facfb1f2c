"""Network paths between clients and servers: what a scenario asks for (spec), the
userspace packet link that gives it (emulator, link), how it is verified (calibration),
and the TLS material every pattern uses when the path asks for TLS (tls)."""
