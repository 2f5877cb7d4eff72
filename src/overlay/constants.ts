/**
 * Every number and name of the overlay node in one place (seeds CATALOG §1,
 * §2c, §4, §5, §6). Values the seeds leave open are chosen here, with why.
 */

// ---- cluster addressing (§4) -------------------------------------------------

/** The cluster CIDR until SetupGlobalOverlay names one (Status reports it before setup). */
export const DEFAULT_CLUSTER_CIDR = '10.200.0.0/16';
/** The node's own overlay IP is slice base + 1; it is never handed to a container. */
export const NODE_RESERVED_OFFSET = 1;
/** The first address handed to a container: slice base + 2. */
export const FIRST_CONTAINER_OFFSET = 2;
/**
 * The seeds hard-code the global device's prefix to /16 whatever the cluster
 * prefix is; kept as the fallback when the cluster CIDR cannot supply one.
 */
export const GLOBAL_OVERLAY_PREFIX_LEN = 16;

// ---- service subnets and dedicated devices -----------------------------------

/** One IPv4 service subnet: 62 usable addresses; the older /28 ran out under CI churn in the Rust reference. */
export const SERVICE_SUBNET_PREFIX_V4 = 26;
/** One IPv6 service subnet: 256 addresses, the IPv6 counterpart the Rust reference pairs with /26. */
export const SERVICE_SUBNET_PREFIX_V6 = 120;
/**
 * Registry key of the node-wide shared bridge's subnet. Service names are
 * DNS-label shaped, so this can never collide with a real service.
 */
export const SHARED_BRIDGE_KEY = '__zlayer_shared_bridge__';
/** Bytes of sha256(service, nodeKey) that pick the first probed block: 48 bits spread well and stay exact in a bigint. */
export const SUBNET_START_HASH_BYTES = 6;
/** Dedicated devices listen on globalPort+1 … globalPort+this: 64 dedicated services per node is plenty, and the band stays easy to firewall. */
export const DEDICATED_PORT_BAND_SIZE = 64;
/** The highest UDP port; the band is cut there. */
export const MAX_UDP_PORT = 65535;

// ---- WireGuard device (§1) ---------------------------------------------------

/** zlayer_core::DEFAULT_WG_PORT is not in the seeds; the tests use 51820 (WireGuard's customary port). */
export const DEFAULT_WG_PORT = 51820;
/** WireGuard inside a mesh: 1500 − 80 bytes of WireGuard/UDP/IPv6 overhead; an untuned MTU blackholes packets. */
export const OVERLAY_MTU = 1420;
/** Persistent keepalive of overlay peers (the 75 s stale cutoff below is 3 × this). */
export const DEFAULT_PERSISTENT_KEEPALIVE_SECS = 25;
/** A peer without a handshake for this long is reconnected by the NAT tick (3 × 25 s keepalive). */
export const HANDSHAKE_STALE_SECS = 75;
/** The endpoint text that means "no endpoint yet" (a roaming peer) in a PeerSpec. */
export const ROAMING_ENDPOINT = '0.0.0.0:0';
/** Environment variables that mean rootless mode (unspecified local endpoint, no iptables). */
export const ROOTLESS_ENV_VARS: readonly string[] = Object.freeze(['TSWG_ROOTLESS', 'ZLAYER_ROOTLESS']);

// ---- interface names (§2c) ---------------------------------------------------

/** IFNAMSIZ − 1: the longest Linux interface name. */
export const MAX_IFNAME_LEN = 15;
/** Every interface the overlay creates starts with this. */
export const INTERFACE_PREFIX = 'zl-';
/** Hex digits of the hash in a hashed name without a usable suffix ("zl-" + 12 = 15). */
export const HASHED_NAME_HEX_LEN = MAX_IFNAME_LEN - INTERFACE_PREFIX.length;
/** Suffix of the node's one global device: zl-{deployment}-{instanceId}-g. */
export const GLOBAL_SUFFIX = 'g';
/** Suffix of a per-service bridge: zl-{deployment}-{instanceId}-{service}-b. */
export const BRIDGE_SUFFIX = 'b';
/** Suffix of a dedicated per-service WireGuard device: zl-{deployment}-{instanceId}-{service}-d. */
export const DEDICATED_SUFFIX = 'd';
/** Suffix of the node-wide shared bridge; never ends in -b/-d, so orphan pruning cannot pick it. */
export const SHARED_BRIDGE_SUFFIX = 'sh';
/** The part standing in for a service name in the shared bridge's name: [deployment, instanceId, 'shared'] + 'sh'. */
export const SHARED_BRIDGE_PART = 'shared';
/** BridgeName answer of a setup that degraded to a VM-only overlay (no host adapter). */
export const HOST_ADAPTER_DISABLED_NAME = '(host-adapter-disabled)';

// ---- control API and files ---------------------------------------------------

/** Where `tswg node` listens unless --control says otherwise. */
export const DEFAULT_CONTROL_SOCKET = '/run/tswg/node.sock';
/** The control socket and the state file hold keys or drive the network: owner only. */
export const CONTROL_SOCKET_MODE = 0o600;
export const STATE_FILE_MODE = 0o600;
/** The node's state inside --data-dir (identity, ports, assignments). */
export const STATE_FILE_NAME = 'node-state.json';
/** Version of the state file's format. */
export const STATE_VERSION = 1;
/** Random bytes of a generated instance id (hex, 8 characters: keeps zl-{dep}-{id}-g short). */
export const INSTANCE_ID_BYTES = 4;
/** A control request line longer than this is refused (a peer list of 5,000 peers fits many times over). */
export const MAX_CONTROL_LINE_BYTES = 1024 * 1024;
/** Peer scope of a request that names none. */
export const DEFAULT_SCOPE = 'global';

// ---- containers ----------------------------------------------------------------

/** PID_MAX_LIMIT on 64-bit Linux: the largest PID a container can have. */
export const MAX_PID = 4_194_304;
/** Private keys of dedicated devices live here, one file each, inside --data-dir. */
export const KEY_DIRECTORY_NAME = 'keys';
/** Service overlays and runtime-added peers, inside --data-dir (no keys). */
export const SERVICES_FILE_NAME = 'services.json';
/** Container attachments, written before the kernel is touched, inside --data-dir. */
export const ATTACHMENTS_FILE_NAME = 'attachments.json';
/** Host end of a container's veth: veth-<pid>-<tag>; the container end before its move: vc-<pid>-<tag>. */
export const HOST_VETH_PREFIX = 'veth-';
export const PENDING_VETH_PREFIX = 'vc-';
/** Tags: s = the service network (eth0), g = the global overlay (eth1). */
export const SERVICE_VETH_TAG = 's';
export const GLOBAL_VETH_TAG = 'g';
export const SERVICE_CONTAINER_IFNAME = 'eth0';
export const GLOBAL_CONTAINER_IFNAME = 'eth1';
/** A dedicated device's own address is subnet base + 2 (base + 1 is the bridge gateway): two interfaces never share one. */
export const DEDICATED_DEVICE_OFFSET = 2;
/** Peers added over the control socket, per device, inside --data-dir. */
export const PEERS_FILE_NAME = 'peers.json';
/** net.ipv4.ip_forward as it was before the node changed it, inside --data-dir until restored. */
export const SYSCTL_SNAPSHOT_FILE_NAME = 'sysctl-before.json';

// ---- membership (etcd) ---------------------------------------------------------

/** What the node remembers of its membership inside --data-dir: lease ids, slice, last known peers. */
export const MEMBERSHIP_FILE_NAME = 'membership.json';
/** Keys live under <prefix>/<deployment>/ unless the config names another prefix. */
export const DEFAULT_ETCD_PREFIX = '/tswg';
/** Presence lease: a node that stops renewing disappears from its peers within about this long. */
export const DEFAULT_PRESENCE_LEASE_TTL_SECS = 30;
/** Below this a single slow keep-alive round trip would expire the lease. */
export const MIN_PRESENCE_LEASE_TTL_SECS = 2;
/** Keep-alive every third of the TTL: two renewals can fail before the lease expires. */
export const PRESENCE_KEEPALIVE_FRACTION = 3;
/** Slices handed out by etcd: 62 container addresses per node, 1024 nodes in a /16. */
export const DEFAULT_SLICE_PREFIX_LEN = 26;
/** The slice reservation outlives crashes and reboots by hours; a node gone longer gives its slice back. */
export const SLICE_LEASE_TTL_SECS = 24 * 3600;
/** Renewed well before expiry: an etcd outage of many hours still cannot free a live node's slice. */
export const SLICE_LEASE_RENEW_SECS = 3600;
/** A new node picks at random among this many first free slices: concurrent joiners rarely collide, and slices stay packed. */
export const SLICE_PICK_WINDOW = 8;
/** Conflicting allocation transactions retried this many times before giving up. */
export const SLICE_ALLOCATION_ATTEMPTS = 32;
/** One etcd request (not a watch stream) is abandoned after this long and the next endpoint tried. */
export const ETCD_REQUEST_TIMEOUT_MS = 3000;
/** Reconnect backoff after etcd failures: doubled from the first to the last value. */
export const ETCD_RETRY_MIN_MS = 250;
export const ETCD_RETRY_MAX_MS = 5000;
/** At start-up with nothing saved, etcd is tried this long before the node gives up with an error. */
export const MEMBERSHIP_START_TIMEOUT_MS = 30_000;
/** SIGTERM waits at most this long for etcd to revoke the presence lease (otherwise it expires on its own). */
export const MEMBERSHIP_REVOKE_TIMEOUT_MS = 1000;
/** Own record re-checked this often (service subnets, NAT candidates); written only when it changed. */
export const MEMBERSHIP_PUBLISH_CHECK_MS = 2000;
/** A node record lists at most this many NAT candidates (a record stays small). */
export const MAX_ADVERTISED_CANDIDATES = 10;
/** Version of the node and slice records' JSON. */
export const MEMBERSHIP_RECORD_VERSION = 1;
