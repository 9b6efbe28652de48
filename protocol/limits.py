"""Every bound the protocol enforces, each with the reason it has that value.

The decoder checks declared lengths against these right after reading a header, so a
peer can never make us buffer more than the limit.
"""

from __future__ import annotations

# 2: the stream is signed (protocol/stream_auth.py). A version-1 peer sends unsigned
# media that a version-2 peer would drop, so the two refuse each other at Hello with
# BAD_VERSION instead (the tracker likewise at Register).
PROTOCOL_VERSION = 2
# Versions this build can speak; Hello negotiates the highest common one.
SUPPORTED_VERSIONS = (2,)

MAGIC = b"TC"
# magic(2) version(1) kind(1) meta length(4) payload length(4)
HEADER_BYTES = 12

# Metadata of every kind but PeerList: the largest (a Redirect or Bye with
# MAX_CANDIDATES candidates, every string at its limit) is ~48 KB; more is abuse.
MAX_META_BYTES = 64 * 1024
# A PeerList of MAX_ROOM_PEERS entries with every string at its limit in 4-byte UTF-8
# characters is ~470 KB (tested); only the tracker sends it, peers only receive it.
MAX_PEER_LIST_META_BYTES = 512 * 1024
# What a tracker accepts from a client: a Register with every field at its limit in
# 4-byte UTF-8 is under 2 KB; 8 KB leaves room for new fields while 1,000 hostile
# connections each holding a partial message stay under 8 MB.
MAX_TRACKER_INBOX_META_BYTES = 8 * 1024
# A 1080p JPEG at quality 80 is 150-400 KB; 4 MiB leaves room for noisy camera
# frames while capping what one frame can make a receiver buffer.
MAX_VIDEO_PAYLOAD_BYTES = 4 * 1024 * 1024
# One 20 ms Opus packet: at Opus' top rate (510 kbit/s) a frame is at most 1275 bytes
# (RFC 6716), two 10 ms frames 2551; 4 KiB bounds any packet we would accept.
MAX_AUDIO_PAYLOAD_BYTES = 4 * 1024
# Video messages above this are sent as FramePart pieces of this size, so a 20 ms sound
# packet waits behind at most one piece, not a whole keyframe: 16 KiB crosses a
# 250 kbit/s link in ~0.5 s less than a 40 KB keyframe would, and at 6 Mbit/s in
# 22 ms; smaller pieces would add a header (~40 bytes with meta) per piece for little.
FRAME_PART_BYTES = 16 * 1024
# A reassembled message is one video frame's wire bytes: header, metadata, payload.
MAX_PARTS_TOTAL_BYTES = HEADER_BYTES + MAX_META_BYTES + MAX_VIDEO_PAYLOAD_BYTES
# Pieces one message may take: the largest total in pieces of FRAME_PART_BYTES. A
# sender using smaller pieces than that is refused (it would only cost us messages).
MAX_FRAME_PARTS = -(-MAX_PARTS_TOTAL_BYTES // FRAME_PART_BYTES)
# The only packet duration Treecast sends: 20 ms (microseconds, as RFC 6716 counts).
AUDIO_FRAME_US = 20_000
# Control messages carry no binary payload today; allow a little for future kinds.
MAX_CONTROL_PAYLOAD_BYTES = 64 * 1024

# Shown in lists and chat; longer names break layouts and add nothing.
MAX_NAME_CHARS = 32
MAX_ROOM_CHARS = 32
# One chat line, like IRC-sized messages; pasting a book is not chat.
MAX_CHAT_CHARS = 500
MAX_REASON_CHARS = 200
MAX_HOST_CHARS = 255  # DNS name limit
MAX_ID_CHARS = 64
# A hole punch starts this soon at the latest: the punch must fit in a join attempt's
# few seconds, and a far-off moment would only hold both peers' ports for nothing.
MAX_PUNCH_DELAY_MS = 5_000
# An Ed25519 signature (64 bytes) in base64: 88 characters.
MAX_SIGNATURE_CHARS = 88
# A SHA-256 digest (32 bytes) in base64: 44 characters (a transcoded frame's source).
MAX_DIGEST_CHARS = 44
# Path to the root: a tree of fan-out 2 with depth 64 holds more peers than exist.
MAX_PATH_LEN = 64
# Redirects and Bye hints: a handful of candidates is plenty to re-attach.
MAX_CANDIDATES = 32
# Children a peer may advertise room for (tracker lists, LAN records); far above what
# any real upload can feed.
MAX_FREE_SLOTS = 1024
# Peers one PeerList carries: a room up to this size is listed whole (the GUI draws
# the whole tree); a larger one is sent as a bounded selection plus per-depth counts.
MAX_ROOM_PEERS = 256
# Peers one room may hold at a tracker (and the largest count a PeerList may report):
# a tracker process holds 10,000 with heartbeats (docs/PERFORMANCE.md); 100,000 leaves
# room for several trackers sharing a room, while bounding what a count can claim.
MAX_TRACKER_ROOM_PEERS = 100_000
# Rooms one RoomList names (the busiest first): a start screen shows a screenful, and
# the answer stays a few kilobytes however many rooms a tracker holds.
MAX_LISTED_ROOMS = 100
# The most rooms a RoomList may say a tracker holds: bounds what a count can claim.
MAX_ROOM_COUNT = 10_000_000
# Rooms one status report lists (largest first): one screen for an operator.
MAX_STATUS_ROOMS = 100
# Chat ids exchanged in one backfill offer (matches the chat history kept).
MAX_CHAT_IDS = 256
# Video frame geometry: nothing above 8K.
MAX_DIMENSION_PX = 8192
# A position or length in a streamed file: a week of video, far beyond any real file,
# and well inside a JSON-safe integer of milliseconds.
MAX_MEDIA_MS = 7 * 24 * 3600 * 1000
# A video codec's name on the wire ("h264", "mjpeg"): a short lowercase token.
MAX_CODEC_CHARS = 16
# Layers (frame heights) a viewer can ask for.
LAYERS = (360, 480, 720, 1080)
# A demand (JoinRequest, LayerDemand) of this layer asks for no video and no sound:
# the link carries chat and control only (a streamer still choosing its source).
NO_VIDEO = 0

# Messages per second a peer may send on one link, all kinds: 60 fps video, pings at
# 4/s and chat leave plenty of room; the burst absorbs a chat backfill of MAX_CHAT_IDS.
MAX_LINK_MESSAGES_PER_S = 400
MAX_LINK_MESSAGES_BURST = 800
# Pings answered per second on one link: a child pings at most every tick (4/s, while
# its parent is quiet), so a Pong for each of 400 messages a second would only be
# CPU spent for a flooder; pings beyond this go unanswered (the pinger's loss).
MAX_PINGS_ANSWERED_PER_S = 8
MAX_PINGS_ANSWERED_BURST = 8
# FramePart pieces per second on one link, counted apart from messages (a reassembled
# message then counts as one): 4,000 pieces of FRAME_PART_BYTES are 64 MB/s, above any
# stream, while a sender of tiny pieces is held to that many. The burst is two whole
# messages of MAX_FRAME_PARTS.
MAX_LINK_PARTS_PER_S = 4000
MAX_LINK_PARTS_BURST = 2 * MAX_FRAME_PARTS
