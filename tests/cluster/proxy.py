"""A TCP proxy on loopback that a test can cut, to make a server unreachable without stopping it."""
import contextlib
import selectors
import socket
import threading


class TcpProxy:
    """Forwards 127.0.0.1:<port> to target (host, port) from one thread.

    cut() closes every forwarded connection and from then on accepts new ones without ever
    answering (the way a partition looks to a client: its connect attempt times out), or with
    hold=False closes them at once (the way a stopped server looks); mend() forwards again.
    Shape: _peers = {socket: the socket it forwards to}.
    """

    def __init__(self, target):
        self.target = target
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.setblocking(False)
        self.port = self._listener.getsockname()[1]
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._listener, selectors.EVENT_READ)
        self._peers = {}
        self._held = []
        self._cut = False
        self._hold = True
        self._orders = []  # [(callable run on the proxy thread, threading.Event set when done)]
        self._lock = threading.Lock()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="tcp-proxy", daemon=True)
        self._thread.start()

    def cut(self, hold=True):
        self._hold = hold
        self._order(self._do_cut)

    def mend(self):
        self._order(self._do_mend)

    def close(self):
        self._order(self._do_cut)
        self._stopped = True
        self._thread.join(5)
        self._listener.close()
        for held in self._held:
            held.close()

    def _order(self, action):
        done = threading.Event()
        with self._lock:
            self._orders.append((action, done))
        done.wait(5)

    def _run(self):
        while not self._stopped:
            for key, _ in self._selector.select(0.05):
                if key.fileobj is self._listener:
                    self._accept()
                else:
                    self._pump(key.fileobj)
            with self._lock:
                orders, self._orders = self._orders, []
            for action, done in orders:
                action()
                done.set()

    def _accept(self):
        try:
            client, _ = self._listener.accept()
        except BlockingIOError:
            return
        if self._cut:
            if self._hold:
                self._held.append(client)
            else:
                client.close()
            return
        try:
            upstream = socket.create_connection(self.target, timeout=2)
        except OSError:
            client.close()
            return
        for sock in (client, upstream):
            sock.setblocking(True)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._peers[client], self._peers[upstream] = upstream, client
        self._selector.register(client, selectors.EVENT_READ)
        self._selector.register(upstream, selectors.EVENT_READ)

    def _pump(self, sock):
        peer = self._peers.get(sock)
        if peer is None:
            return
        try:
            data = sock.recv(65536)
            if data:
                peer.sendall(data)
                return
        except OSError:
            pass
        self._drop(sock)

    def _drop(self, sock):
        peer = self._peers.pop(sock, None)
        for one in (sock, peer):
            if one is None:
                continue
            self._peers.pop(one, None)
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(one)
            one.close()

    def _do_cut(self):
        self._cut = True
        for sock in list(self._peers):
            self._drop(sock)

    def _do_mend(self):
        self._cut = False
        for held in self._held:
            held.close()
        self._held = []
