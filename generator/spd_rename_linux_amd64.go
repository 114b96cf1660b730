package generator

const sysRenameat2 = 316
