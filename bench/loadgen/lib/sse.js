'use strict';
// Server-Sent Events over plain HTTP, as a browser's EventSource reads them (the WHATWG HTML
// "event stream interpretation"): lines end with CRLF, LF or CR; `:` starts a comment; fields
// `event`, `data` (joined by \n), `id` (the last event id, kept across events), `retry`; an empty
// line dispatches the event, unless it has no data. Hand-written so that the generator measures
// the server, not a library: feed() takes the decoded chunks as they arrive.

class SseParser {
  constructor(onEvent) {
    this.onEvent = onEvent; // ({type, data, id}) per dispatched event
    this.buf = '';
    this.skipLF = false; // the last chunk ended in CR: a leading LF of the next one belongs to it
    this.started = false;
    this.type = '';
    this.data = [];
    this.lastId = '';
    this.retry = null;
    this.comments = 0;
  }

  feed(chunk) {
    let s = this.buf + chunk;
    if (!this.started && s.length) {
      this.started = true;
      if (s.charCodeAt(0) === 0xfeff) s = s.slice(1); // one BOM at the start of the stream
    }
    let i = 0;
    if (this.skipLF && s.charCodeAt(0) === 10) i = 1;
    this.skipLF = false;
    for (;;) {
      let j = i;
      while (j < s.length && s.charCodeAt(j) !== 10 && s.charCodeAt(j) !== 13) j++;
      if (j === s.length) break; // an incomplete line waits for the next chunk
      this._line(s.slice(i, j));
      if (s.charCodeAt(j) === 13) {
        if (j + 1 === s.length) { this.skipLF = true; i = j + 1; break; }
        if (s.charCodeAt(j + 1) === 10) j++;
      }
      i = j + 1;
    }
    this.buf = s.slice(i);
  }

  _line(line) {
    if (line === '') return this._dispatch();
    if (line.charCodeAt(0) === 58) { this.comments++; return undefined; } // ':' comment (keep-alive)
    const c = line.indexOf(':');
    const field = c < 0 ? line : line.slice(0, c);
    let value = c < 0 ? '' : line.slice(c + 1);
    if (value.charCodeAt(0) === 32) value = value.slice(1);
    if (field === 'event') this.type = value;
    else if (field === 'data') this.data.push(value);
    else if (field === 'id') { if (!value.includes('\0')) this.lastId = value; } else if (field === 'retry') {
      if (/^\d+$/.test(value)) this.retry = Number(value);
    }
    return undefined;
  }

  _dispatch() {
    const type = this.type || 'message';
    const data = this.data;
    this.type = '';
    this.data = [];
    if (data.length === 0) return;
    this.onEvent({ type, data: data.join('\n'), id: this.lastId });
  }
}

module.exports = { SseParser };
