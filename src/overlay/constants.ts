/**
 * Every number and name of the overlay node in one place, each with why.
 */

// ---- cluster addressing ------------------------------------------------------

/** The cluster CIDR until SetupGlobalOverlay names one (Status reports it before setup). */
export const DEFAULT_CLUSTER_CIDR = '10.200.0.0/16';
/** The node's own overlay IP is slice base + 1; it is never handed to a container. */
export const NODE_RESERVED_OFFSET = 1;
/** The first address handed to a container: slice base + 2. */
export const FIRST_CONTAINER_OFFSET = 2;

// ---- service subnets and dedicated devices -----------------------------------

/** One IPv4 service subnet: 62 usable addresses; a /28 runs out under container churn. */
export const SERVICE_SUBNET_PREFIX_V4 = 26;
/** One IPv6 service subnet: 256 addresses, the IPv6 counterpart of the /26. */
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

// ---- WireGuard device --------------------------------------------------------

/** The global device's listen port unless configured: WireGuard's customary port. */
export const DEFAULT_WG_PORT = 51820;
/** WireGuard inside a mesh: 1500 − 80 bytes of WireGuard/UDP/IPv6 overhead; an untuned MTU blackholes packets. */
export const OVERLAY_MTU = 1420;
/** Persistent keepalive of overlay peers. */
export const DEFAULT_PERSISTENT_KEEPALIVE_SECS = 25;
/** The endpoint text that means "no endpoint yet" (a roaming peer) in a PeerSpec. */
export const ROAMING_ENDPOINT = '0.0.0.0:0';
/** Environment variables that mean rootless mode (unspecified local endpoint, no iptables). */
export const ROOTLESS_ENV_VARS: readonly string[] = Object.freeze(['TSWG_ROOTLESS', 'ZLAYER_ROOTLESS']);

// ---- interface names ---------------------------------------------------------

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
/** The data directory holds the private key: owner only (group/world-writable ones are refused). */
export const DATA_DIR_MODE = 0o700;
/** The node's state inside --data-dir (identity, ports, assignments). */
export const STATE_FILE_NAME = 'node-state.json';
/** Version of the state file's format. */
export const STATE_VERSION = 1;
/** Random bytes of a generated instance id (hex, 8 characters: keeps zl-{dep}-{id}-g short). */
export const INSTANCE_ID_BYTES = 4;
/** A control request line longer than this is refused (a peer list of 5,000 peers fits many times over). */
export const MAX_CONTROL_LINE_BYTES = 1024 * 1024;
/**
 * An answer line longer than this is refused by the client. Answers come
 * from our own node, so the cap only bounds a client's memory: a Status of
 * 6,000 peers is about 1.5 MB, this allows about 250,000.
 */
export const MAX_CONTROL_RESPONSE_BYTES = 64 * 1024 * 1024;
/** Shutdown (request or signal) waits at most this long for the request in flight before tearing down anyway. */
export const SHUTDOWN_QUEUE_WAIT_MS = 1000;
/** A second device failure within this long after a restart is not retried: the node exits 1. */
export const DEVICE_RESTART_WINDOW_MS = 60_000;

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

// ---- DNS -----------------------------------------------------------------------

/** The resolver listens on the node IP, this port, UDP and TCP. */
export const DNS_PORT = 53;
/** Suffix of a deployment's default domain: web → web.<deployment>.internal ("internal" is reserved for private use). */
export const DNS_DEFAULT_DOMAIN_SUFFIX = 'internal';
/** TTL of registered records: long enough to spare the resolver, short enough that a moved container is found within minutes. */
export const DNS_RECORD_TTL_SECS = 600;
/** TTL of a "no such name" (the SOA's minimum): a name registered a moment later is found soon. */
export const DNS_NEGATIVE_TTL_SECS = 30;
/** The classic UDP limit (RFC 1035) when the client sends no EDNS size. */
export const DNS_UDP_DEFAULT_PAYLOAD = 512;
/** The EDNS size we advertise and the most we send over UDP (the DNS flag day 2020 value: no IP fragmentation). */
export const DNS_UDP_MAX_PAYLOAD = 1232;
/** Upstream resolvers tried per forwarded query (resolv.conf's MAXNS). */
export const DNS_MAX_UPSTREAMS = 3;
/** How long one upstream gets before the next is asked (glibc's default timeout is 5 s; 4 s keeps 3 tries under a client's 15 s). */
export const DNS_UPSTREAM_TIMEOUT_MS = 4000;
/**
 * UDP sockets kept open per upstream for forwarding, each on a random port
 * the kernel picked, and queries one socket sends before it is replaced: a
 * socket per query cost 4× the throughput, while a forged answer must still
 * guess the socket's port among these and a random 16-bit id.
 */
export const DNS_FORWARD_SOCKETS_PER_UPSTREAM = 16;
export const DNS_FORWARD_SOCKET_USES = 2000;
/** Forwarded queries in flight above this are answered REFUSED: a flood must not grow sockets without bound. */
export const DNS_MAX_IN_FLIGHT = 1024;
/** The UDP listener's receive buffer: a burst of queries waits in the kernel instead of being dropped (capped by net.core.rmem_max). */
export const DNS_UDP_RECV_BUFFER_BYTES = 1024 * 1024;
/** An idle TCP client is closed after this long (RFC 7766 suggests seconds, not minutes). */
export const DNS_TCP_IDLE_MS = 10_000;
/** TCP clients at once; more are closed at once (each holds a socket). */
export const DNS_MAX_TCP_CLIENTS = 256;
/** Registered names and addresses, inside --data-dir. */
export const DNS_RECORDS_FILE_NAME = 'dns-records.json';
/** Version of the records file's format. */
export const DNS_RECORDS_VERSION = 1;
/** The host's resolver list, and systemd-resolved's list of its real upstreams (used when the first names only the stub). */
export const RESOLV_CONF_PATH = '/etc/resolv.conf';
export const SYSTEMD_RESOLVED_UPSTREAM_PATH = '/run/systemd/resolve/resolv.conf';
/** systemd-resolved's stub listeners: forwarding to them from the node would loop through the host's own resolver. */
export const SYSTEMD_RESOLVED_STUBS: readonly string[] = Object.freeze(['127.0.0.53', '127.0.0.54']);
/** `ip[:port],…` overriding the upstreams (tests, hosts whose resolv.conf is not the truth). */
export const DNS_UPSTREAMS_ENV = 'TSWG_DNS_UPSTREAMS';

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
/**
 * Peer changes are saved to membership.json at most this often (each save is
 * two fsyncs on the event loop; a join storm would otherwise save per batch).
 * Start, lease changes and stop save at once.
 */
export const MEMBERSHIP_SAVE_DELAY_MS = 1000;
/** A node record lists at most this many NAT candidates (a record stays small). */
export const MAX_ADVERTISED_CANDIDATES = 10;
/** Version of the node and slice records' JSON. */
export const MEMBERSHIP_RECORD_VERSION = 1;


// ---- firewall ----------------------------------------------------------------

/** Overrides the backend choice: nftables, iptables, iptables-nft, iptables-legacy or off. */
export const FIREWALL_ENV = 'TSWG_FIREWALL';
/** Where the networkd / NetworkManager drop-ins go (tests point it at a temp directory); default "/". */
export const HOST_CONFIG_ROOT_ENV = 'TSWG_HOST_CONFIG_ROOT';
/** The node's own nftables tables: `inet tswg` (filter, NAT) and `bridge tswg` (isolation on a bridge). */
export const FIREWALL_TABLE = 'tswg';
/** The node's own iptables chains. */
export const FIREWALL_CHAIN_INPUT = 'TSWG-INPUT';
export const FIREWALL_CHAIN_FORWARD = 'TSWG-FORWARD';
export const FIREWALL_CHAIN_POSTROUTING = 'TSWG-POSTROUTING';
/** One iptables chain per isolation network: TSWG-ISO-0, TSWG-ISO-1, … */
export const FIREWALL_ISOLATION_CHAIN_PREFIX = 'TSWG-ISO-';
/** Every rule the node adds carries a comment starting with this; leftovers and bypass rules are found by it. */
export const FIREWALL_COMMENT_PREFIX = 'tswg';
/**
 * The mark bit for "masquerade this": bit 24, clear of Tailscale's 0xff0000
 * and kube-proxy's 0x4000 / 0x8000 (Docker sets none). Only this bit is set
 * and tested, so other tools' bits of the mark pass through unchanged.
 */
export const MASQUERADE_MARK = 0x1000000;
/** Our base chains run just before the default filter / srcnat priority: the mark is set before other tools' default-priority chains see the packet. */
export const FIREWALL_PRIORITY_OFFSET = -10;
/** Reconcile period: what another tool flushed is back within this. */
export const FIREWALL_RECONCILE_MS = 10_000;
/** A firewall tool that takes longer than this is hung (xtables lock held elsewhere: -w waits up to it). */
export const FIREWALL_TOOL_TIMEOUT_MS = 20_000;
/** Seconds iptables -w waits for the xtables lock. */
export const XTABLES_LOCK_WAIT_SECS = 10;
/** What the firewall remembers across a crash (created tables, rp_filter before), inside --data-dir. */
export const FIREWALL_STATE_FILE_NAME = 'firewall.json';
/** Isolation-network members other nodes host (SetRemoteIsolation, etcd records), inside --data-dir. */
export const REMOTE_ISOLATION_FILE_NAME = 'remote-isolation.json';
/** Interfaces of the overlay as nft and iptables wildcards: zl-* (devices, bridges) and veth-* (containers' host ends). */
export const OVERLAY_IFNAME_WILDCARDS_NFT: readonly string[] = Object.freeze(['zl-*', 'veth-*']);
export const OVERLAY_IFNAME_WILDCARDS_IPT: readonly string[] = Object.freeze(['zl-+', 'veth-+']);
/** rp_filter 2 (loose): a reply arriving on the overlay for a source routed elsewhere is not dropped. */
export const RP_FILTER_LOOSE = '2';
/** networkd .network drop-in (00-: the first match wins) and NetworkManager conf.d drop-in, relative to the host root. */
export const NETWORKD_DIR = 'etc/systemd/network';
export const NETWORKD_DROPIN_NAME = '00-tswg-unmanaged.network';
export const NETWORKMANAGER_DIR = 'etc/NetworkManager/conf.d';
export const NETWORKMANAGER_DROPIN_NAME = 'tswg-unmanaged.conf';

/** UAPI's persistent_keepalive_interval is a u16. */
export const MAX_KEEPALIVE_SECS = 65_535;
/** The longest name in text form (RFC 1035: 255 octets on the wire); service and deployment names are held to it too. */
export const MAX_NAME_LENGTH = 253;
/** The sysctl the node and attach turn on for routing, and restore. */
export const IPV4_FORWARD_KEY = 'net.ipv4.ip_forward';
