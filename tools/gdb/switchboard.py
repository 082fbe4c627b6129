# gdb commands and pretty-printers for Switchboard (docs/debugging.md).
#
# The debug build's binary names this file in its .debug_gdb_scripts
# section, so gdb loads it by itself once the directory is trusted:
#     add-auto-load-safe-path /path/to/switchboard/tools/gdb
# (in ~/.gdbinit, or -iex '...' on gdb's command line); or load it by hand
# with `source tools/gdb/switchboard.py`.
#
#   sb sessions [USER]      every open session: queue, transport, replay, waits
#   sb async-bt [SESSION]   the chains of suspended coroutines of a session
#                           (reader and writer), or of the current frame
#   sb hub                  the hub's registry and mailbox
#   sb store                the store worker's queue and the batch it commits
#
# It reads the program's memory only (no function is called), so it works
# on a core file too. Where it starts: every I/O thread waits in epoll_wait,
# so nothing of a session is on any stack; session.cpp links each thread's
# session list from the global all_session_lists, and server.cpp lists each
# server's services (hub, store) in all_servers. Everything else is reached
# from there through members, as the code names them: when a member is
# renamed, this file follows (the gdb test in test/debugger fails first).
#
# It depends on libstdc++'s layout (as its own printers do) and on Boost
# 1.81's Asio internals: awaitable_frame_base::caller_ links a coroutine to
# the one awaiting it, the co_spawn entry point's top_of_stack_ names the
# innermost one, and GCC's coroutine frame keeps _Coro_resume_index.

import re

import gdb

ANON = "switchboard::(anonymous namespace)::"
EXECUTOR = "boost::asio::any_io_executor"
FRAME_BASE = "boost::asio::detail::awaitable_frame_base<%s>" % EXECUTOR
ENTRY_FRAME = (
    "boost::asio::detail::awaitable_frame<"
    "boost::asio::detail::awaitable_thread_entry_point, %s>" % EXECUTOR
)

_types = {}


def lookup_type(name):
    if name not in _types:
        _types[name] = gdb.lookup_type(name)
    return _types[name]


def global_value(name):
    symbol = gdb.lookup_static_symbol(name) or gdb.lookup_global_symbol(name)
    if symbol is None:
        raise gdb.GdbError(
            "%s not found: is this a Switchboard binary with debug information?" % name
        )
    return symbol.value()


# --- libstdc++ values --------------------------------------------------------


def std_string(value):
    length = int(value["_M_string_length"])
    if length == 0:
        return ""
    return value["_M_dataplus"]["_M_p"].string(length=length, errors="replace")


def device_name(value):
    """A store::device_name: up to 64 chars inline, and their count."""
    size = int(value["size_"])
    if size == 0:
        return ""
    return value["chars_"]["_M_elems"].address.cast(gdb.lookup_type("char").pointer()).string(
        length=size, errors="replace"
    )


def string_bytes(value):
    length = int(value["_M_string_length"])
    if length == 0:
        return b""
    address = int(value["_M_dataplus"]["_M_p"])
    return bytes(gdb.selected_inferior().read_memory(address, length))


def shared_get(value):
    """The pointer a std::shared_ptr holds (0 when empty)."""
    return value["_M_ptr"]


def unique_get(value):
    """The pointer a std::unique_ptr with the default deleter holds: its only member."""
    pointer = value.type.strip_typedefs().template_argument(0).pointer()
    return value.address.cast(pointer.pointer()).dereference()


def hub_shards(hub):
    """The shards of a hub (one per I/O thread), each a switchboard::hub_shard."""
    for shard in vector_items(hub["shards_"]):
        yield unique_get(shard).dereference()


def vector_items(value):
    impl = value["_M_impl"]
    start, finish = impl["_M_start"], impl["_M_finish"]
    for i in range(int(finish - start)):
        yield (start + i).dereference()


def optional_value(value):
    payload = value["_M_payload"]
    if not bool(payload["_M_engaged"]):
        return None
    return payload["_M_payload"]["_M_value"]


def variant_value(value):
    """(alternative index, contained value) of a std::variant."""
    index = int(value["_M_index"])
    alternatives = value.type.strip_typedefs()
    if index >= len(list(variant_alternatives(alternatives))):
        return index, None
    union = value["_M_u"]
    for _ in range(index):
        union = union["_M_rest"]
    storage = union["_M_first"]["_M_storage"]
    wanted = alternatives.template_argument(index)
    if storage.type.strip_typedefs() == wanted.strip_typedefs():
        return index, storage
    return index, storage.address.cast(wanted.pointer()).dereference()


def variant_alternatives(variant_type):
    i = 0
    while True:
        try:
            yield variant_type.template_argument(i)
        except RuntimeError:
            return
        i += 1


def short_name(type_):
    return str(type_.strip_typedefs()).split("::")[-1]


def visualized_children(value):
    """Children as libstdc++'s own printers give them (deque, unordered_map)."""
    printer = gdb.default_visualizer(value)
    if printer is None:
        raise gdb.GdbError(
            "libstdc++'s pretty-printers are not loaded (%s)" % value.type.strip_typedefs()
        )
    return [child for _, child in printer.children()]


# --- Switchboard's values ----------------------------------------------------


def describe_message_id(value):
    text = std_string(value["value"])
    return text if bool(value["is_number"]) else '"%s"' % text


def describe_stored_message(value):
    """An inbox entry: a message (direct, or a group copy), or a STATUS."""
    if str(value["kind"]).endswith("status"):
        # A STATUS in the inbox of `receiver`, about the seqs of `sender`.
        return "seq %d STATUS %s upto %d by %d, for %d" % (
            int(value["seq"]),
            str(value["state"]).rsplit(":", 1)[-1],
            int(value["upto"]),
            int(value["sender"]),
            int(value["receiver"]),
        )
    text = "seq %d from %d to %d, %d bytes" % (
        int(value["seq"]),
        int(value["sender"]),
        int(value["receiver"]),
        int(value["content"]["_M_string_length"]),
    )
    if int(value["group"]):
        text += ", group %d gseq %d" % (int(value["group"]), int(value["gseq"]))
    message_id = optional_value(value["id"])
    if message_id is not None:
        text += ", id %s" % describe_message_id(message_id)
    return text


def describe_event(value):
    """One session_event, as the session's queue holds it."""
    index, event = variant_value(value)
    name = short_name(value.type.strip_typedefs().template_argument(index))
    if name == "frame":
        text = shared_get(event["text"])
        size = int(text.dereference()["_M_string_length"]) if int(text) else 0
        seq = int(event["seq"])
        return ("message seq %d, %d bytes" % (seq, size)) if seq else ("frame, %d bytes" % size)
    if name == "replay_page":
        messages = list(vector_items(event["messages"]))
        if not messages:
            return "replay page, empty"
        return "replay page, seqs %d..%d" % (int(messages[0]["seq"]), int(messages[-1]["seq"]))
    if name == "replay_more":
        return "replay more, up to %d" % int(event["target"])
    if name == "close":
        return "close (%s)" % str(event["reason"]).split("::")[-1]
    if name == "welcome":
        return "welcome"
    return name


def unique_get(value):
    """The pointer a std::unique_ptr with the default deleter holds (0 when
    empty): libstdc++ keeps it alone, first, in a tuple with the empty
    deleter, where gdb finds two members named _M_head_impl."""
    target = value.type.strip_typedefs().template_argument(0)
    return value.address.cast(target.pointer().pointer()).dereference()


def channel_events(channel):
    """The events waiting in a session channel, in order. Its queue is a
    lazy_queue (session_handle.hpp): a std::deque that exists only while
    events wait."""
    queue = unique_get(channel["impl_"]["buffer_"]["queue_"])
    if not int(queue):
        return []
    events = []
    for payload in visualized_children(queue.dereference()):
        events.append(payload["message_"]["arg1_"])
    return events


def frames_seqs(data):
    """The seqs of the message frames (type 1) in bytes of server WebSocket frames."""
    seqs, at = [], 0
    while at + 2 <= len(data):
        length, head = data[at + 1] & 0x7F, 2
        if length == 126:
            length, head = int.from_bytes(data[at + 2 : at + 4], "big"), 4
        elif length == 127:
            length, head = int.from_bytes(data[at + 2 : at + 10], "big"), 10
        payload = data[at + head : at + head + length]
        if data[at] & 0x0F == 1 and payload.startswith(b'{"type":1,'):
            found = re.search(rb'"seq":(\d+)', payload)
            if found:
                seqs.append(int(found.group(1)))
        at += head + length
    return seqs


def seq_ranges(seqs):
    if not seqs:
        return "none"
    if seqs == list(range(seqs[0], seqs[-1] + 1)):
        return "%d..%d" % (seqs[0], seqs[-1]) if len(seqs) > 1 else str(seqs[0])
    return ", ".join(str(s) for s in seqs)


def enum_name(value):
    return str(value).split("::")[-1]


def gdb_thread_of(lwp):
    for thread in gdb.selected_inferior().threads():
        if thread.ptid[1] == lwp:
            return thread.num
    return None


# --- where things are --------------------------------------------------------


def servers():
    """The services of each server in the process (server.cpp: all_servers)."""
    return [s.dereference() for s in vector_items(global_value(ANON + "all_servers"))]


def sessions():
    """(thread list, session_state) of every open session (session.cpp)."""
    lst = global_value(ANON + "all_session_lists")
    while int(lst):
        state = lst["head"]
        while int(state):
            yield lst, state
            state = state["next"]
        lst = lst["next_list"]


def unordered_map_items(value):
    """(key, mapped) of a std::unordered_map, walking libstdc++'s node list.

    Its own printer needs the node type, which GCC may leave out of the
    debug information."""
    map_type = value.type.strip_typedefs()
    key_type = map_type.template_argument(0).strip_typedefs()
    mapped_type = map_type.template_argument(1).strip_typedefs()
    # A node: its next pointer, then the pair (hashes of integers are not cached).
    key_at = lookup_type("void").pointer().sizeof
    alignment = mapped_type.alignof
    mapped_at = key_at + (key_type.sizeof + alignment - 1) // alignment * alignment
    node = value["_M_h"]["_M_before_begin"]["_M_nxt"]
    while int(node):
        key = gdb.Value(int(node) + key_at).cast(key_type.pointer()).dereference()
        mapped = gdb.Value(int(node) + mapped_at).cast(mapped_type.pointer()).dereference()
        yield key, mapped
        node = node["_M_nxt"]


def hub_members():
    """{session_handle address: hub member} over every server's hub."""
    members = {}
    for services in servers():
        hub = services["registry"].referenced_value()
        for shard in hub_shards(hub):
            for _, user_state in unordered_map_items(shard["users_"]):
                for member in vector_items(user_state["sessions"]):
                    members[int(shared_get(member["session"]))] = member
    return members


def find_session(text):
    for lst, state in sessions():
        handle = shared_get(state["handle"])
        if std_string(handle["id"]) == text or std_string(handle["id"]).endswith(text):
            return state
    raise gdb.GdbError("no open session %s (sb sessions lists them)" % text)


# --- coroutine frames --------------------------------------------------------


def coroutine_frame_type(function_name, field_prefix):
    """GCC's frame type of a coroutine, and the offset of a local in it.

    GCC names the frame `<mangled name>.Frame`, in the coroutine's scope."""
    symbol = gdb.lookup_global_symbol(function_name) or gdb.lookup_symbol(function_name)[0]
    if symbol is None:
        raise gdb.GdbError("coroutine %s not found" % function_name)
    parameters = symbol.type.fields()
    if parameters and str(parameters[0].type.strip_typedefs()).endswith(".Frame *"):
        frame_type = parameters[0].type.target()  # the actor, found first
    else:
        scope = function_name.rsplit("::", 1)[0]
        frame_type = lookup_type("%s::%s.Frame" % (scope, symbol.linkage_name))
    for field in frame_type.fields():
        if field.name and field.name.startswith(field_prefix):
            return frame_type, field.bitpos // 8
    raise gdb.GdbError("no %s in the frame of %s" % (field_prefix, function_name))


def promise_of(frame):
    return frame["_Coro_promise"].address.cast(lookup_type(FRAME_BASE).pointer())


def frame_holding(address, function_name, field_prefix):
    """The coroutine frame of `function_name` whose local `field_prefix` is at address."""
    frame_type, offset = coroutine_frame_type(function_name, field_prefix)
    return gdb.Value(int(address) - offset).cast(frame_type.pointer())


def chain_of(mark):
    """The awaitable frame at the top of the stack of the coroutine that
    holds `mark` (a coroutine_mark* of session_state: reader_coroutine or
    writer_coroutine), or None when no such coroutine runs (the half is
    parked, or ended)."""
    if not int(mark):
        return None
    name = mark["name_"].string()
    frame = frame_holding(mark, ANON + name, "mark_")
    return top_of(promise_of(frame))


def half_name(state, which):
    """parked, running or ended: where the reader or writer of a session is."""
    return enum_name(state[which])


def top_of(awaitable_frame):
    """From any frame of an awaitable thread to its innermost (top) frame."""
    frame = awaitable_frame
    while int(frame["caller_"]):
        frame = frame["caller_"]
    entry = frame.cast(lookup_type(ENTRY_FRAME).pointer())
    return entry["top_of_stack_"]


def suspended_at(function, frame_type, frame):
    """File and line of the co_await a GCC coroutine frame is suspended at.

    GCC (12, -O0) stores the suspension point's number in
    _Coro_resume_index just before it suspends; the line of that store is
    the co_await's, or for some the function's closing brace, and then the
    instructions right after it are the co_await's."""
    fields = {f.name: f for f in frame_type.fields()}
    if "_Coro_resume_index" not in fields:
        return None
    index = int(frame["_Coro_resume_index"])
    offset = fields["_Coro_resume_index"].bitpos // 8
    block = gdb.block_for_pc(int(function.value().address))
    while block.superblock is not None and block.superblock.function == function:
        block = block.superblock
    store = re.compile(r"movw\s+\$0x%x,0x%x\(%%r" % (index, offset))
    arch = gdb.selected_inferior().architecture()
    code = [
        (insn, gdb.find_pc_line(insn["addr"]))
        for insn in arch.disassemble(block.start, block.end - 1)
    ]
    closing_line = max(
        sal.line
        for _, sal in code
        if sal.symtab is not None and sal.symtab.filename == function.symtab.filename
    )
    found = None
    for insn, sal in code:
        if found is not None:
            if sal.symtab is not None and sal.line not in (0, closing_line):
                return sal.symtab, sal.line
        elif store.search(insn["asm"]):
            if sal.symtab is not None and sal.line != closing_line:
                return sal.symtab, sal.line
            found = sal
    return (found.symtab, found.line) if found is not None and found.symtab else None


def source_line(symtab, line):
    try:
        with open(symtab.fullname(), encoding="utf-8", errors="replace") as f:
            for number, text in enumerate(f, 1):
                if number == line:
                    return text.strip()
    except OSError:
        pass
    return None


def source_names(mangled, at):
    """The length-prefixed identifiers of a mangled nested name from `at`."""
    names = []
    while at < len(mangled) and mangled[at].isdigit():
        digits = at
        while mangled[at].isdigit():
            at += 1
        length = int(mangled[digits:at])
        names.append(mangled[at : at + length])
        at += length
    return names


def initiation_of(mangled):
    """What an Asio use_awaitable operation initiates, from its frame's mangled name:
    a lambda of a Switchboard function (transport::async_flush...), or an
    Asio initiation class (a channel's initiate_async_receive...)."""
    initiation = mangled.split("8initiate", 1)[-1]
    local = initiation.find("ZN")
    if local >= 0:
        return "::".join(source_names(initiation, local + 2))
    named = re.findall(r"\d+(basic_\w*?channel|initiate_async_[a-z_]+|initiate_\w+?)(?=I|E|\d)", initiation)
    return "::".join(dict.fromkeys(named)) if named else None


def strip_templates(name):
    out, depth = [], 0
    for c in name:
        if c == "<":
            depth += 1
        elif c == ">":
            depth -= 1
        elif depth == 0:
            out.append(c)
    return "".join(out)


def coroutine_name(function, frame_type):
    """A readable name: for Asio's use_awaitable operations, what they initiate."""
    name = function.print_name
    if name.endswith(")"):
        # Drop the parameter list, the last parenthesised group.
        depth = 0
        for i in range(len(name) - 1, -1, -1):
            depth += {")": 1, "(": -1}.get(name[i], 0)
            if depth == 0:
                name = name[:i]
                break
    if name.startswith("boost::asio::async_result<boost::asio::use_awaitable_t"):
        mangled = re.search(r"(_Z\w+)\.Frame", str(frame_type.name))
        what = initiation_of(mangled.group(1)) if mangled else None
        return "asynchronous operation" + (" %s" % what if what else "")
    return strip_templates(name)


def frame_lines(awaitable_frame, number):
    """Lines describing one awaitable frame (a coroutine suspended at a co_await)."""
    coro = int(awaitable_frame["coro_"]["_M_fr_ptr"])
    void_pp = lookup_type("void").pointer().pointer()
    resume = int(gdb.Value(coro).cast(void_pp).dereference())
    block = gdb.block_for_pc(resume)
    if block is None or block.function is None:
        return ["#%-2d 0x%x in ?? (resume at 0x%x)" % (number, coro, resume)]
    function = block.function
    frame_type = function.type.fields()[0].type.target()
    frame = gdb.Value(coro).cast(frame_type.pointer())
    lines = ["#%-2d 0x%x in %s" % (number, coro, coroutine_name(function, frame_type))]
    where = suspended_at(function, frame_type, frame)
    if where is not None:
        symtab, line = where
        lines[0] += " at %s:%d" % (symtab.filename.split("/")[-1], line)
        text = source_line(symtab, line)
        if text:
            lines.append("      %s" % text)
    return lines


def chain_lines(top):
    lines, frame, number = [], top, 0
    while int(frame):
        lines.extend(frame_lines(frame, number))
        frame, number = frame["caller_"], number + 1
    return lines


def current_awaitable_frame():
    """The awaitable frame of the coroutine running in the selected gdb frame."""
    frame = gdb.selected_frame()
    while frame is not None:
        function = frame.function()
        if function is not None:
            try:
                coro = frame.read_var("frame_ptr")
                return coro["_Coro_promise"].address.cast(lookup_type(FRAME_BASE).pointer())
            except (ValueError, gdb.error):
                pass
            if function.name.startswith(FRAME_BASE) and function.name.endswith("::resume()"):
                return frame.read_var("this")
        frame = frame.older()
    return None


# --- commands ----------------------------------------------------------------


class sb_command(gdb.Command):
    """Switchboard's debugger commands (docs/debugging.md): sb sessions,
    sb async-bt, sb hub, sb store."""

    def __init__(self):
        super().__init__("sb", gdb.COMMAND_DATA, gdb.COMPLETE_NONE, True)


class sb_sessions(gdb.Command):
    """sb sessions [USER]: every open session (of USER), where its frames wait.

    For each session: its user, device, id and I/O thread; the frames
    waiting in its queue (count, bytes, and the seqs of the messages among
    them); the transport (bytes appended, bytes of the socket write in
    flight and the seqs of its messages, the flushes waiting for it); the
    hub's replay state; and what its reader and writer are suspended on.
    Sets $sb_state and $sb_handle to the last session listed, for `print`."""

    def __init__(self):
        super().__init__("sb sessions", gdb.COMMAND_DATA)

    def invoke(self, argument, from_tty):
        wanted = int(argument) if argument.strip() else None
        members = hub_members()
        count = 0
        for lst, state in sessions():
            handle = shared_get(state["handle"])
            if wanted is not None and int(handle["user"]) != wanted:
                continue
            count += 1
            for line in session_lines(lst, state, handle, members):
                print(line)
            gdb.set_convenience_variable("sb_state", state)
            gdb.set_convenience_variable("sb_handle", handle)
        if count == 0:
            print("no open session" + ("" if wanted is None else " of user %d" % wanted))


def session_lines(lst, state, handle, members):
    lwp = int(lst["thread"])
    thread = gdb_thread_of(lwp)
    lines = [
        "session %s  user %d  device \"%s\"  thread %s (LWP %d)"
        % (std_string(handle["id"]), int(handle["user"]), device_name(handle["device"]), thread, lwp),
        "  state 0x%x  handle 0x%x" % (int(state), int(handle)),
    ]
    events = channel_events(handle["channel_"])
    seqs, others = [], {}
    for event in events:
        index, value = variant_value(event)
        kind = short_name(event.type.strip_typedefs().template_argument(index))
        if kind == "frame" and int(value["seq"]):
            seqs.append(int(value["seq"]))
        else:
            others[kind] = others.get(kind, 0) + 1
    limit = int(handle["queue_limit_"])
    held = int(handle["queued_bytes_"]["_M_i"])
    transport_bytes = shared_get(handle["transport_bytes_"])
    if int(transport_bytes):
        held += int(transport_bytes.dereference()["_M_i"])
    lines.append(
        "  queue: %d events: %d messages (seqs %s)%s; %d frame bytes"
        % (
            len(events),
            len(seqs),
            seq_ranges(seqs),
            "".join(", %d %s" % (n, k) for k, n in sorted(others.items())),
            int(handle["queued_bytes_"]["_M_i"]),
        )
    )
    lines.append("  held for the session: %d of --send-queue-bytes %d" % (held, limit))
    out = shared_get(state["io"]["out_"]).dereference()
    writing = string_bytes(out["writing"])
    pending = string_bytes(out["pending"])
    lines.append(
        "  transport: %d bytes appended (seqs %s), %d bytes in the socket write%s (seqs %s), "
        "%d flushes waiting"
        % (
            len(pending),
            seq_ranges(frames_seqs(pending)),
            len(writing),
            " in flight" if bool(out["in_flight"]) else "",
            seq_ranges(frames_seqs(writing)),
            len(visualized_children(out["waiters"])),
        )
    )
    member = members.get(int(handle))
    if member is None:
        replay = "not registered with the hub"
    elif bool(member["live"]):
        replay = "live above seq %d" % int(member["from"])
    else:
        replay = "replaying from the inbox (live above seq %d once caught up)" % int(member["from"])
    closing = "  closing" if bool(handle["aborted_"]["_M_base"]["_M_i"]) else ""
    lines.append("  replay: %s%s" % (replay, closing))
    lines.append(
        "  reader: %s  writer: %s"
        % (enum_name(state["reader_waits"]), enum_name(state["writer_waits"]))
    )
    lines.append(
        "  coroutines: reader %s, writer %s"
        % (half_name(state, "reader"), half_name(state, "writer"))
    )
    return lines


class sb_async_bt(gdb.Command):
    """sb async-bt [SESSION]: the chains of suspended coroutines.

    With a session id (or its end, as `sb sessions` shows it): the chain
    of the session's writer and of its reader, each from the innermost
    co_await to the co_spawn that started it, or that it is parked (no
    coroutine: an idle half holds none). Without: the chain of the
    coroutine in the selected frame."""

    def __init__(self):
        super().__init__("sb async-bt", gdb.COMMAND_STACK)

    def invoke(self, argument, from_tty):
        if argument.strip():
            state = find_session(argument.strip())
            handle = shared_get(state["handle"])
            print("session %s of user %d" % (std_string(handle["id"]), int(handle["user"])))
            for which in ("writer", "reader"):
                top = chain_of(state[which + "_coroutine"])
                if top is not None:
                    print("%s:" % which)
                    for line in chain_lines(top):
                        print("  " + line)
                elif half_name(state, which) == "parked":
                    waits = (
                        "the socket's readability (a handler)"
                        if which == "reader"
                        else "its next event (the handle's flag)"
                    )
                    print("%s: parked, no coroutine: waits for %s" % (which, waits))
                else:
                    print("%s: %s, no coroutine" % (which, half_name(state, which)))
            return
        frame = current_awaitable_frame()
        if frame is None:
            # Not an error: a breakpoint's commands would stop at it. The
            # reader runs as a plain handler (session.cpp), and `bt` is then
            # its whole chain.
            print(
                "not in a coroutine (a handler: bt shows its whole chain); give a "
                "session id (sb sessions lists them), or select a frame of a coroutine (frame N)"
            )
            return
        for line in chain_lines(top_of(frame)):
            print(line)


class sb_hub(gdb.Command):
    """sb hub: the hub's registry (users, their sessions, live or replaying,
    the seq above which each gets live frames) and its mailbox."""

    def __init__(self):
        super().__init__("sb hub", gdb.COMMAND_DATA)

    def invoke(self, argument, from_tty):
        for services in servers():
            hub = services["registry"].referenced_value()
            overflows = list(vector_items(hub["overflow_"]))
            print("hub (switchboard::hub *) 0x%x: %d shards" % (int(hub.address), len(overflows)))
            for k, shard in enumerate(hub_shards(hub)):
                users = sorted(unordered_map_items(shard["users_"]), key=lambda p: int(p[0]))
                print(
                    "shard %d (switchboard::hub_shard *) 0x%x: %d users, %d sessions registered, "
                    "mailbox %d events waiting, overflow %d%s"
                    % (
                        k,
                        int(shard.address),
                        len(users),
                        int(shard["registered_"]),
                        len(visualized_children(shard["mailbox_"]["impl_"]["buffer_"])),
                        len(visualized_children(overflows[k])),
                        ", draining" if bool(shard["draining_"]) else "",
                    )
                )
                for user, state in users:
                    print("  user %d: highest seq %d" % (int(user), int(state["highest"])))
                    for member in vector_items(state["sessions"]):
                        session = shared_get(member["session"])
                        print(
                            "    session %s  %s above seq %d"
                            % (
                                std_string(session["id"]),
                                "live" if bool(member["live"]) else "replaying",
                                int(member["from"]),
                            )
                        )


class sb_store(gdb.Command):
    """sb store: each store worker's request queue and the batch it commits
    (one worker, or with a memory store and --threads N, one per I/O thread,
    each with its partition of the users)."""

    def __init__(self):
        super().__init__("sb store", gdb.COMMAND_DATA)

    def invoke(self, argument, from_tty):
        for services in servers():
            store = services["store"].referenced_value()
            workers = [unique_get(w).dereference() for w in vector_items(store["workers_"])]
            print(
                "store (switchboard::store::workers *) 0x%x: %d %s"
                % (
                    int(store.address),
                    len(workers),
                    "worker" if len(workers) == 1 else "workers, worker k on I/O thread k",
                )
            )
            for k, worker in enumerate(workers):
                self.show(k, worker, len(workers))

    def show(self, k, worker, count):
        queue = visualized_children(worker["requests_"]["impl_"]["buffer_"])
        kinds = {}
        for payload in queue:
            index, _ = variant_value(payload["message_"]["arg1_"])
            name = short_name(
                payload["message_"]["arg1_"].type.strip_typedefs().template_argument(index)
            )
            kinds[name] = kinds.get(name, 0) + 1
        if bool(worker["own_thread_"]):
            where = "own thread"
        elif count == 1:
            where = "on the main I/O thread"
        else:
            where = "on I/O thread %d" % k
        print(
            "store worker %d (switchboard::store::worker *) 0x%x, %s: %d requests queued%s, "
            "%d SEND bytes charged%s"
            % (
                k,
                int(worker.address),
                where,
                len(queue),
                (" (" + ", ".join("%d %s" % (n, k) for k, n in sorted(kinds.items())) + ")")
                if kinds
                else "",
                int(worker["queued_bytes_"]["_M_i"]),
                ", entries handed by another partition waiting"
                if bool(worker["nudged_"]["_M_base"]["_M_i"])
                else "",
            )
        )
        group = list(vector_items(worker["group_"]))
        print(
            "  this round: %d requests; appends being committed: %d; cursor moves waiting: %d"
            % (
                len(list(vector_items(worker["round_"]))),
                len(group),
                len(list(vector_items(worker["moves_"]))),
            )
        )
        for append in group:
            message = append["message"]
            print(
                "    append from %d to %d%s"
                % (
                    int(message["sender"]),
                    int(message["receiver"]),
                    ""
                    if optional_value(message["id"]) is None
                    else ", id %s" % describe_message_id(optional_value(message["id"])),
                )
            )


# --- pretty-printers ---------------------------------------------------------


class text_printer:
    def __init__(self, describe, value):
        self.describe, self.value = describe, value

    def to_string(self):
        return self.describe(self.value)


def describe_handle(value):
    return "session %s of user %d (%s ack)%s" % (
        std_string(value["id"]),
        int(value["user"]),
        "manual" if enum_name(value["ack"]) == "manual" else "auto",
        ", closing" if bool(value["aborted_"]["_M_base"]["_M_i"]) else "",
    )


def describe_channel(value):
    events = channel_events(value)
    if not events:
        return "session channel, empty"
    return "session channel, %d waiting: %s" % (
        len(events),
        "; ".join(describe_event(e) for e in events[:8]) + ("; ..." if len(events) > 8 else ""),
    )


def lookup_printer(value):
    type_ = value.type.strip_typedefs()
    if type_.code == gdb.TYPE_CODE_PTR:
        return None
    name = type_.tag or type_.name
    if name is None:
        return None
    if name == "switchboard::store::stored_message":
        return text_printer(describe_stored_message, value)
    if name == "switchboard::store::message_id":
        return text_printer(describe_message_id, value)
    if name == "switchboard::session_handle":
        return text_printer(describe_handle, value)
    if name.startswith("std::variant<switchboard::event::welcome,"):
        return text_printer(describe_event, value)
    if name.startswith(
        "boost::asio::experimental::basic_concurrent_channel<boost::asio::any_io_executor, "
        "switchboard::session_channel_traits<>, void(boost::system::error_code, "
        "std::variant<switchboard::event::welcome"
    ):
        return text_printer(describe_channel, value)
    return None


if not getattr(gdb, "_switchboard_loaded", False):
    gdb._switchboard_loaded = True
    sb_command()
    sb_sessions()
    sb_async_bt()
    sb_hub()
    sb_store()
    gdb.pretty_printers.append(lookup_printer)
