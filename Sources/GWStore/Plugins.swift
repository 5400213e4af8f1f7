// Consumers and plugins as the data path sees them (Kong JSON shape in the worker document under
// "consumers", "plugins"; credentials are in Credentials.swift). Plugin `config` stays JSON: each plugin
// implementation reads its own fields (defaults already filled in by the Admin API).
import GWJSON

/// A Kong consumer (`consumers.lua`).
public struct Consumer: Sendable, Equatable {
    public var id: String
    public var username: String?
    public var customID: String?
    public init(id: String, username: String? = nil, customID: String? = nil) {
        self.id = id; self.username = username; self.customID = customID
    }

    public static func decode(json v: JSON) throws(SnapshotError) -> Consumer {
        let f = try Fields(v, entity: "consumer")
        return Consumer(id: try f.string("id"), username: try f.optString("username"), customID: try f.optString("custom_id"))
    }
    public var json: JSON { ["id": .string(id), "username": JSON(username), "custom_id": JSON(customID)] }
}

/// A Kong plugin instance (`plugins.lua`), scoped by route / service / consumer (nil = any).
public struct Plugin: Sendable, Equatable {
    public var id: String
    public var name: String
    public var instanceName: String?
    public var routeID: String?
    public var serviceID: String?
    public var consumerID: String?
    public var config: JSON
    public var protocols: [String]
    public var enabled: Bool

    public init(id: String, name: String, instanceName: String? = nil, routeID: String? = nil, serviceID: String? = nil,
                consumerID: String? = nil, config: JSON = .object(JSONObject()),
                protocols: [String] = ["grpc", "grpcs", "http", "https"], enabled: Bool = true) {
        self.id = id; self.name = name; self.instanceName = instanceName; self.routeID = routeID
        self.serviceID = serviceID; self.consumerID = consumerID; self.config = config; self.protocols = protocols
        self.enabled = enabled
    }

    public static func decode(json v: JSON) throws(SnapshotError) -> Plugin {
        let f = try Fields(v, entity: "plugin")
        return Plugin(id: try f.string("id"), name: try f.string("name"), instanceName: try f.optString("instance_name"),
                      routeID: try f.foreignID("route"), serviceID: try f.foreignID("service"),
                      consumerID: try f.foreignID("consumer"), config: f.present("config") ?? .object(JSONObject()),
                      protocols: try f.strings("protocols") ?? ["grpc", "grpcs", "http", "https"],
                      enabled: try f.bool("enabled", default: true))
    }

    public var json: JSON {
        func ref(_ id: String?) -> JSON { id.map { ["id": .string($0)] } ?? .null }
        return ["id": .string(id), "name": .string(name), "instance_name": JSON(instanceName), "route": ref(routeID),
                "service": ref(serviceID), "consumer": ref(consumerID), "config": config, "protocols": JSON(protocols),
                "enabled": .bool(enabled)]
    }
}
