package main

// The sidecar image has no CA bundle of its own; routes to a remote
// endpoint (ngrok) need the usual web roots to check its certificate.
import _ "golang.org/x/crypto/x509roots/fallback"
