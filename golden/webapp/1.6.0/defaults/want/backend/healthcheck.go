package main

import (
	"fmt"
	"net/http"
	"time"
)

// healthcheck asks the server on this host for /healthz. The runtime image has no shell
// or curl, so the container health check runs `server healthcheck` instead.
func healthcheck(port string) error {
	if port == "" {
		port = "8080"
	}
	client := &http.Client{Timeout: 3 * time.Second}
	resp, err := client.Get("http://127.0.0.1:" + port + "/healthz")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET /healthz: %s", resp.Status)
	}
	return nil
}
