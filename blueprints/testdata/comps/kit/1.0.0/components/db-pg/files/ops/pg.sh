#!/bin/sh
echo pg
