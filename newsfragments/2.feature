The lab server: device registry with leases, device model, simulated lab, twistd plugin `lab`, TOML configuration and plugin discovery.
