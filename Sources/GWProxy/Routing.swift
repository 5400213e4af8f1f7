// The router call, isolated: GWRouter's match result → RouteDecision.
import GWHTTP
import GWRouter
import GWStore

extension RuntimeConfig {
    func route(_ head: HTTPRequestHead, listenPort: Int) -> RouteDecision? {
        nil // replaced when GWRouter lands
    }
}
