// Package chatclient is a small Parley client over the REST API and the WebSocket
// protocol, used by end-to-end tests and by `parley loadgen`.
package chatclient

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gorilla/websocket"

	"github.com/parleychat/parley/runtime/protocol"
)

// Client talks to one Parley base URL ("http://127.0.0.1:8080").
type Client struct {
	Base string
	HTTP *http.Client
}

// New returns a client with a bounded HTTP timeout.
func New(base string) *Client {
	return &Client{Base: strings.TrimSuffix(base, "/"), HTTP: &http.Client{Timeout: 15 * time.Second}}
}

// APIError is a non-2xx answer.
type APIError struct {
	Status  int
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (e *APIError) Error() string { return fmt.Sprintf("%d %s: %s", e.Status, e.Code, e.Message) }

// Do sends a JSON request with an optional bearer token and decodes a JSON answer into out.
func (c *Client) Do(ctx context.Context, method, path, token string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.Base+path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		e := &APIError{Status: resp.StatusCode}
		_ = json.Unmarshal(raw, e)
		return e
	}
	if out != nil && len(raw) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			return fmt.Errorf("decode %s %s: %w", method, path, err)
		}
	}
	return nil
}

// User is a registered account with its access token.
type User struct {
	ID       string
	Username string
	Token    string
}

// Register creates an account.
func (c *Client) Register(ctx context.Context, username, password string) (User, error) {
	var out struct {
		User struct {
			ID       string `json:"id"`
			Username string `json:"username"`
		} `json:"user"`
		AccessToken string `json:"access_token"`
	}
	err := c.Do(ctx, http.MethodPost, "/api/v1/auth/register", "", map[string]string{"username": username, "password": password}, &out)
	return User{ID: out.User.ID, Username: out.User.Username, Token: out.AccessToken}, err
}

// Login returns a fresh access token.
func (c *Client) Login(ctx context.Context, username, password string) (User, error) {
	var out struct {
		User struct {
			ID       string `json:"id"`
			Username string `json:"username"`
		} `json:"user"`
		AccessToken string `json:"access_token"`
	}
	err := c.Do(ctx, http.MethodPost, "/api/v1/auth/login", "", map[string]string{"username": username, "password": password}, &out)
	return User{ID: out.User.ID, Username: out.User.Username, Token: out.AccessToken}, err
}

// OpenDirect returns the direct room of u and other.
func (c *Client) OpenDirect(ctx context.Context, u User, otherID string) (string, error) {
	var room struct {
		ID string `json:"id"`
	}
	err := c.Do(ctx, http.MethodPost, "/api/v1/rooms/direct", u.Token, map[string]string{"user_id": otherID}, &room)
	return room.ID, err
}

// CreateGroup creates a group owned by u with members.
func (c *Client) CreateGroup(ctx context.Context, u User, name string, memberIDs []string) (string, error) {
	var room struct {
		ID string `json:"id"`
	}
	err := c.Do(ctx, http.MethodPost, "/api/v1/rooms", u.Token, map[string]any{"name": name, "member_ids": memberIDs}, &room)
	return room.ID, err
}

// Block makes u block userID.
func (c *Client) Block(ctx context.Context, u User, userID string) error {
	return c.Do(ctx, http.MethodPut, "/api/v1/blocks/"+userID, u.Token, nil, nil)
}

// Conn is one WebSocket connection.
type Conn struct {
	ws     *websocket.Conn
	frames chan protocol.ServerFrame
	done   chan struct{}
	err    error
}

// Dial opens /ws with the token in the subprotocol. wsBase is "ws://host:port".
func Dial(ctx context.Context, wsBase, token string) (*Conn, error) {
	ws, err := DialSocket(ctx, wsBase, token)
	if err != nil {
		return nil, err
	}
	c := &Conn{ws: ws, frames: make(chan protocol.ServerFrame, 1024), done: make(chan struct{})}
	go c.readLoop()
	return c, nil
}

// DialSocket opens /ws as Dial does and hands over the bare socket, for a caller that
// reads it itself (the load generator: one goroutine per connection, no frame channel).
func DialSocket(ctx context.Context, wsBase, token string) (*websocket.Conn, error) {
	d := websocket.Dialer{Subprotocols: []string{protocol.Subprotocol, protocol.AuthSubprotocolPrefix + token}, HandshakeTimeout: 10 * time.Second}
	ws, resp, err := d.DialContext(ctx, strings.TrimSuffix(wsBase, "/")+"/ws", nil)
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("dial: %w (status %d)", err, resp.StatusCode)
		}
		return nil, fmt.Errorf("dial: %w", err)
	}
	return ws, nil
}

func (c *Conn) readLoop() {
	defer close(c.done)
	defer close(c.frames)
	for {
		_, raw, err := c.ws.ReadMessage()
		if err != nil {
			c.err = err
			return
		}
		var f protocol.ServerFrame
		if json.Unmarshal(raw, &f) == nil {
			c.frames <- f
		}
	}
}

// Send writes one client frame.
func (c *Conn) Send(f protocol.ClientFrame) error {
	b, err := json.Marshal(f)
	if err != nil {
		return err
	}
	_ = c.ws.SetWriteDeadline(time.Now().Add(10 * time.Second))
	return c.ws.WriteMessage(websocket.TextMessage, b)
}

// Next returns the next frame matching match, skipping others, until ctx ends.
func (c *Conn) Next(ctx context.Context, match func(protocol.ServerFrame) bool) (protocol.ServerFrame, error) {
	for {
		select {
		case f, ok := <-c.frames:
			if !ok {
				return protocol.ServerFrame{}, fmt.Errorf("connection closed: %v", c.err)
			}
			if match == nil || match(f) {
				return f, nil
			}
		case <-ctx.Done():
			return protocol.ServerFrame{}, ctx.Err()
		}
	}
}

// Close closes the connection and waits for the reader.
func (c *Conn) Close() error {
	err := c.ws.Close()
	<-c.done
	return err
}

// Done is closed when the connection ends; Err then says why.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Err is why the connection ended.
func (c *Conn) Err() error { return c.err }

// Is matches frames of a type.
func Is(t protocol.FrameType) func(protocol.ServerFrame) bool {
	return func(f protocol.ServerFrame) bool { return f.Type == t }
}

// Upload streams body as a file named name and returns its id.
func (c *Client) Upload(ctx context.Context, u User, name, contentType string, body io.Reader) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, c.Base+"/api/v1/files?name="+url.QueryEscape(name), body)
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("Authorization", "Bearer "+u.Token)
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusCreated {
		e := &APIError{Status: resp.StatusCode}
		_ = json.Unmarshal(raw, e)
		return "", e
	}
	var f struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(raw, &f); err != nil {
		return "", err
	}
	return f.ID, nil
}

// Download returns a file's bytes and content type.
func (c *Client) Download(ctx context.Context, u User, id string) ([]byte, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.Base+"/api/v1/files/"+url.PathEscape(id), nil)
	if err != nil {
		return nil, "", err
	}
	req.Header.Set("Authorization", "Bearer "+u.Token)
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, "", err
	}
	if resp.StatusCode != http.StatusOK {
		e := &APIError{Status: resp.StatusCode}
		_ = json.Unmarshal(raw, e)
		return nil, "", e
	}
	return raw, resp.Header.Get("Content-Type"), nil
}
