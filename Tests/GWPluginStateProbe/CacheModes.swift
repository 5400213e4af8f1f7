import GWPluginState

/// The cache modes (see main.swift); false for an unknown mode.
func cacheMode(_ args: [String], _ state: PluginState) -> Bool {
    false
}
