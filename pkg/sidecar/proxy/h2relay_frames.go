package proxy

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// The relay's framing: reading frames, the frames about a connection
// itself (settings, pings, floods of them), and writing: frames are
// appended to a leg's queue under the relay's lock and written in batches
// by flush.

// room gives l a pooled queue to append frames to, and puts l among the
// legs with something to write.
func (l *h2leg) room() {
	if l.out == nil {
		l.out = (*outPool.Get().(*[]byte))[:0]
	}
	if !l.queued {
		l.queued = true
		l.c.pending = append(l.c.pending, l)
	}
}

// newH2Framer reads frames from r, header blocks decoded up to maxList.
func newH2Framer(r io.Reader, maxList uint32) *http2.Framer {
	fr := http2.NewFramer(nil, r)
	fr.SetReuseFrames()
	fr.SetMaxReadFrameSize(h2Frame)
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	fr.MaxHeaderListSize = maxList
	return fr
}

// frameBuffered reports whether a whole frame is already in br, so writes
// can wait for it and go out together.
func frameBuffered(br *bufio.Reader) bool {
	n := br.Buffered()
	if n < 9 {
		return false
	}
	h, _ := br.Peek(9)
	return n >= 9+(int(h[0])<<16|int(h[1])<<8|int(h[2]))
}

// codeOf is the GOAWAY code for an error handling a frame.
func codeOf(err error) http2.ErrCode {
	var ce http2.ConnectionError
	if errors.As(err, &ce) {
		return http2.ErrCode(ce)
	}
	return http2.ErrCodeInternal
}

// control handles the frames about the connection l itself (settings,
// pings, windows); false if fr is none of them.
func (c *h2conn) control(l *h2leg, fr http2.Frame) (bool, error) {
	switch f := fr.(type) {
	case *http2.SettingsFrame:
		if err := c.calm(l); err != nil {
			return true, err
		}
		if err := c.settingsFrom(l, f); err != nil {
			return true, err
		}
		return true, c.overflow(l)
	case *http2.PingFrame:
		if err := c.calm(l); err != nil {
			return true, err
		}
		if !f.IsAck() {
			l.ping(f.Data)
		}
		return true, c.overflow(l)
	case *http2.WindowUpdateFrame:
		return true, c.windowUpdate(l, f)
	case *http2.PushPromiseFrame:
		return true, http2.ConnectionError(http2.ErrCodeProtocol) // neither side may push
	}
	return false, nil
}

// calm counts a frame about the connection from l; the caller's beyond
// h2Calm in a second is a flood, answered with ENHANCE_YOUR_CALM.
func (c *h2conn) calm(l *h2leg) error {
	if l != c.caller {
		return nil
	}
	now := time.Now()
	if now.Sub(c.calmSince) >= time.Second {
		c.calmSince, c.calmFrames = now, 0
	}
	if c.calmFrames++; c.calmFrames > h2Calm {
		c.debug("h2c relay: a flood of frames about the connection", "frames", c.calmFrames)
		return http2.ConnectionError(http2.ErrCodeEnhanceYourCalm)
	}
	return nil
}

// overflow drops a peer that lets frames pile up unread.
func (c *h2conn) overflow(l *h2leg) error {
	if len(l.out) > h2OutHard {
		return http2.ConnectionError(http2.ErrCodeEnhanceYourCalm)
	}
	return nil
}

func (c *h2conn) settingsFrom(l *h2leg, f *http2.SettingsFrame) error {
	if f.IsAck() {
		return nil
	}
	// A frame may carry a setting many times; the last value counts,
	// and the streams' windows move once per frame, not per entry.
	initWin := l.initWin
	err := f.ForeachSetting(func(s http2.Setting) error {
		if err := s.Valid(); err != nil {
			return err
		}
		switch s.ID {
		case http2.SettingInitialWindowSize:
			initWin = int64(s.Val)
		case http2.SettingMaxFrameSize:
			l.maxFrame = int(s.Val)
		case http2.SettingMaxConcurrentStreams:
			l.maxStreams = int(min(s.Val, 1<<16))
		case http2.SettingHeaderTableSize:
			l.enc.SetMaxDynamicTableSizeLimit(s.Val)
		}
		return nil
	})
	if err != nil {
		return err
	}
	delta := initWin - l.initWin
	l.initWin = initWin
	if delta != 0 {
		for _, h := range c.sendingOn(l) {
			if h.window += delta; h.window > 1<<31-1 {
				return http2.ConnectionError(http2.ErrCodeFlowControl)
			}
		}
	}
	l.settingsAck()
	if delta > 0 {
		c.unblock(l)
	}
	if l != c.caller {
		c.startWaiting(l)
	}
	return nil
}

// sendingOn returns the halves that send on l.
func (c *h2conn) sendingOn(l *h2leg) []*h2half {
	var hs []*h2half
	if l == c.caller {
		for _, s := range c.streams {
			hs = append(hs, &s.resp)
		}
		return hs
	}
	for _, s := range l.byID {
		hs = append(hs, &s.req)
	}
	return hs
}

// flush writes what every leg has queued, one write per leg at a time;
// the goroutine that finds a leg not being written writes it.
func (c *h2conn) flush() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for {
		l := c.nextToWrite()
		if l == nil {
			if c.done && !c.caller.dead && !c.caller.writing {
				c.drop(c.caller)
			}
			return
		}
		l.writing = true
		b := l.out
		l.out = nil
		c.mu.Unlock()
		l.conn.SetWriteDeadline(time.Now().Add(h2WriteTimeout))
		_, err := l.conn.Write(b)
		c.mu.Lock()
		l.writing = false
		if cap(b) <= 2*h2OutHard {
			b = b[:0]
			outPool.Put(&b)
		}
		if err != nil {
			c.legFailed(l, fmt.Errorf("writing to %s: %w", l.name, err))
			continue
		}
		if len(l.blocked) > 0 {
			c.unblock(l)
		}
	}
}

// nextToWrite takes from c.pending a leg with frames to write that no
// goroutine is writing; one being written stays, for its writer's next
// turn.
func (c *h2conn) nextToWrite() *h2leg {
	for i := 0; i < len(c.pending); {
		l := c.pending[i]
		if l.writing || !l.ready && !l.dead {
			i++
			continue
		}
		c.pending = append(c.pending[:i], c.pending[i+1:]...)
		l.queued = false
		if len(l.out) > 0 && !l.dead {
			return l
		}
	}
	return nil
}

// Frames, appended to a leg's queue (the relay's lock held).

func (l *h2leg) frame(t http2.FrameType, flags http2.Flags, id uint32, payload ...[]byte) {
	n := 0
	for _, p := range payload {
		n += len(p)
	}
	l.room()
	l.out = append(l.out, byte(n>>16), byte(n>>8), byte(n), byte(t), byte(flags),
		byte(id>>24)&0x7f, byte(id>>16), byte(id>>8), byte(id))
	for _, p := range payload {
		l.out = append(l.out, p...)
	}
}

func (l *h2leg) dataFrame(id uint32, p []byte, end bool) {
	var flags http2.Flags
	if end {
		flags = http2.FlagDataEndStream
	}
	l.frame(http2.FrameData, flags, id, p)
}

// headers encodes fields for l and writes them as HEADERS and as many
// CONTINUATION frames as l's frame size needs.
func (l *h2leg) headers(id uint32, fields []hpack.HeaderField, end bool) {
	l.hbuf.Reset()
	for _, f := range fields {
		l.enc.WriteField(f)
	}
	block := l.hbuf.Bytes()
	t, flags := http2.FrameHeaders, http2.Flags(0)
	if end {
		flags = http2.FlagHeadersEndStream
	}
	for {
		n := min(len(block), l.maxFrame)
		if n == len(block) {
			flags |= http2.FlagHeadersEndHeaders
		}
		l.frame(t, flags, id, block[:n])
		block = block[n:]
		if len(block) == 0 {
			return
		}
		t, flags = http2.FrameContinuation, 0
	}
}

func (l *h2leg) windowUpdate(id uint32, n int64) {
	l.frame(http2.FrameWindowUpdate, 0, id, []byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)})
}

func (l *h2leg) rst(id uint32, code http2.ErrCode) {
	l.frame(http2.FrameRSTStream, 0, id, []byte{byte(code >> 24), byte(code >> 16), byte(code >> 8), byte(code)})
}

func (l *h2leg) settings(ss ...http2.Setting) {
	p := make([]byte, 0, 6*len(ss))
	for _, s := range ss {
		p = append(p, byte(s.ID>>8), byte(s.ID), byte(s.Val>>24), byte(s.Val>>16), byte(s.Val>>8), byte(s.Val))
	}
	l.frame(http2.FrameSettings, 0, 0, p)
}

func (l *h2leg) settingsAck() { l.frame(http2.FrameSettings, http2.FlagSettingsAck, 0) }

func (l *h2leg) ping(data [8]byte) { l.frame(http2.FramePing, http2.FlagPingAck, 0, data[:]) }

func (l *h2leg) goAwayFrame(last uint32, code http2.ErrCode) {
	l.frame(http2.FrameGoAway, 0, 0, []byte{byte(last>>24) & 0x7f, byte(last >> 16), byte(last >> 8), byte(last),
		byte(code >> 24), byte(code >> 16), byte(code >> 8), byte(code)})
}
